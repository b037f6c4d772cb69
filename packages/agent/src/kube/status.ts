import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** A Kubernetes `Status` failure object, as the API server itself answers errors (kubectl prints its message). */
export function statusBody(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

/** Reason strings used by the agent's own answers. */
export const statusReasons: Record<number, string> = {
  400: 'BadRequest',
  403: 'Forbidden',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
};

/** Writes a Status answer on a ServerResponse whose head was not sent. */
export function sendStatus(res: ServerResponse, code: number, message: string): void {
  const body = statusBody(code, statusReasons[code] ?? 'InternalError', message);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** Writes a complete Status answer on a raw connection (CONNECT, a refused upgrade, a parse error) and ends it. */
export function sendRawStatus(socket: Duplex, code: number, message: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  const body = statusBody(code, statusReasons[code] ?? 'InternalError', message);
  const text = code === 400 ? 'Bad Request' : code === 403 ? 'Forbidden' : code === 502 ? 'Bad Gateway' : code === 503 ? 'Service Unavailable' : 'Error';
  socket.end(`HTTP/1.1 ${String(code)} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${String(Buffer.byteLength(body))}\r\nconnection: close\r\n\r\n${body}`);
}
