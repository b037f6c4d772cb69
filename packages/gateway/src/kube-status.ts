import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { kubeStatusJson } from '@pipeops/tunnel-protocol';

/** Writes a `Status` response (`Content-Type: application/json`). */
export function sendStatus(res: ServerResponse, code: number, message: string, headers: Record<string, string> = {}): void {
  const body = kubeStatusJson(code, message);
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(code, {
    ...headers,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    ...(code === 401 ? { 'www-authenticate': 'Bearer realm="pipeops-tunnel"' } : {}),
  });
  res.end(body);
}

/**
 * Answers an upgrade (or CONNECT) on the raw socket with a complete `Status`
 * response, then closes it. With `drain`, the socket is not destroyed after
 * the response: what the peer still sends is read and dropped, and the
 * socket closes when the peer ends too. That is for a mux stream, where a
 * reset right behind the response can reach the runner before it has read
 * the response, and the runner's stream would fail without it.
 */
export function refuseWithStatus(socket: Duplex, code: number, message: string, headers: Record<string, string> = {}, o: { drain?: boolean } = {}): void {
  if (socket.destroyed || !socket.writable) { socket.destroy(); return; }
  const body = kubeStatusJson(code, message);
  const lines = [
    `HTTP/1.1 ${code} ${STATUS_CODES[code] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    ...(code === 401 ? ['WWW-Authenticate: Bearer realm="pipeops-tunnel"'] : []),
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.once('error', () => socket.destroy());
  if (o.drain === true) socket.resume();
  else socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}
