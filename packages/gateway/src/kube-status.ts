import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** Kubernetes `StatusReason`s the gateway answers with itself (k8s.io/apimachinery `metav1.StatusReason`). */
export type KubeStatusReason = 'BadRequest' | 'Unauthorized' | 'Forbidden' | 'NotFound' | 'TooManyRequests' | 'InternalError' | 'ServiceUnavailable' | 'Timeout' | 'BadGateway';

/** Reason for each status the runner routes produce. */
const REASON_BY_STATUS: Record<number, KubeStatusReason> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'BadRequest', 429: 'TooManyRequests',
  500: 'InternalError', 502: 'BadGateway', 503: 'ServiceUnavailable', 504: 'Timeout',
};

/** The reason the gateway uses for `status`. */
export function reasonFor(status: number): string {
  return REASON_BY_STATUS[status] ?? (status >= 500 ? 'InternalError' : 'BadRequest');
}

/**
 * A Kubernetes `Status` object (kind Status, apiVersion v1, status Failure),
 * serialised exactly as the API server does, so kubectl, client-go and
 * client-node print the gateway's own errors like any API error.
 */
export function statusJson(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

/** Writes a `Status` response (`Content-Type: application/json`). */
export function sendStatus(res: ServerResponse, code: number, message: string, headers: Record<string, string> = {}): void {
  const body = statusJson(code, reasonFor(code), message);
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
  const body = statusJson(code, reasonFor(code), message);
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
