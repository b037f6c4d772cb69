import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { DENIED_BY_HEADER, kubeStatusJson, type AuditDenyRule } from '@pipeops/tunnel-protocol';

/** The header telling the gateway the agent refused a request itself, and by which rule (see DENIED_BY_HEADER). */
function deniedBy(rule: AuditDenyRule | undefined): Record<string, string> {
  return rule === undefined ? {} : { [DENIED_BY_HEADER]: rule };
}

/** Writes a Status answer on a ServerResponse whose head was not sent; `rule` when the agent refused the request. */
export function sendStatus(res: ServerResponse, code: number, message: string, rule?: AuditDenyRule): void {
  const body = kubeStatusJson(code, message);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...deniedBy(rule) });
  res.end(body);
}

/** Writes a complete Status answer on a raw connection (CONNECT, a refused upgrade, a parse error) and ends it. */
export function sendRawStatus(socket: Duplex, code: number, message: string, rule?: AuditDenyRule): void {
  if (socket.destroyed || socket.writableEnded) return;
  const body = kubeStatusJson(code, message);
  const text = STATUS_CODES[code] ?? 'Error';
  const extra = rule === undefined ? '' : `${DENIED_BY_HEADER}: ${rule}\r\n`;
  socket.end(`HTTP/1.1 ${String(code)} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${String(Buffer.byteLength(body))}\r\n${extra}connection: close\r\n\r\n${body}`);
}
