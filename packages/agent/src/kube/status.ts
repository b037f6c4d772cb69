import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { DENIED_BY_HEADER, kubeStatusResponse, sendKubeStatus, type AuditDenyRule } from '@pipeops/tunnel-protocol';

/** The header telling the gateway the agent refused a request itself, and by which rule (see DENIED_BY_HEADER). */
function deniedBy(rule: AuditDenyRule | undefined): Record<string, string> {
  return rule === undefined ? {} : { [DENIED_BY_HEADER]: rule };
}

/** Writes a Status answer on a ServerResponse whose head was not sent; `rule` when the agent refused the request. */
export function sendStatus(res: ServerResponse, code: number, message: string, rule?: AuditDenyRule): void {
  sendKubeStatus(res, code, message, deniedBy(rule));
}

/** Writes a complete Status answer on a raw connection (CONNECT, a refused upgrade, a parse error) and ends it. */
export function sendRawStatus(socket: Duplex, code: number, message: string, rule?: AuditDenyRule): void {
  if (socket.destroyed || socket.writableEnded) return;
  socket.end(kubeStatusResponse(code, message, deniedBy(rule)));
}
