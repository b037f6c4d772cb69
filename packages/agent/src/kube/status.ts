import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { kubeStatusJson } from '@pipeops/tunnel-protocol';

/** Writes a Status answer on a ServerResponse whose head was not sent. */
export function sendStatus(res: ServerResponse, code: number, message: string): void {
  const body = kubeStatusJson(code, message);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** Writes a complete Status answer on a raw connection (CONNECT, a refused upgrade, a parse error) and ends it. */
export function sendRawStatus(socket: Duplex, code: number, message: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  const body = kubeStatusJson(code, message);
  const text = STATUS_CODES[code] ?? 'Error';
  socket.end(`HTTP/1.1 ${String(code)} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${String(Buffer.byteLength(body))}\r\nconnection: close\r\n\r\n${body}`);
}
