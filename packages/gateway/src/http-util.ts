import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { closingResponse, headBytes, statusLine } from '@pipeops/tunnel-protocol';

/** Writes a JSON response. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/** The JSON body of every gateway error response. */
export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

/**
 * Refuses an upgrade request with a complete HTTP/1.1 response written on
 * the raw socket (no WebSocket handshake happens), then closes the socket.
 */
export function refuseUpgrade(socket: Duplex, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('error', () => socket.destroy());
  socket.end(closingResponse(status, 'application/json', JSON.stringify(errorBody(code, message)), Object.entries(headers).flat()));
}

/** How long {@link closeWithStatus} waits for its answer to be flushed before destroying the socket anyway (ms). */
const CLOSE_FLUSH_MS = 1_000;

/**
 * Ends a connection the HTTP parser gave up on (malformed or late request
 * head): a bodiless `status` answer when no response is under way on it, then
 * the socket is destroyed — once the answer is flushed, or after
 * {@link CLOSE_FLUSH_MS} if the client does not read. Never leaves a
 * half-closed socket behind (the server allows half-open connections).
 */
export function closeWithStatus(socket: Duplex, status: number): void {
  if (socket.destroyed) return;
  socket.on('error', () => socket.destroy());
  // Node's own check (lib/_http_server.js): never write into a response that has started.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (!socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  const timer = setTimeout(() => socket.destroy(), CLOSE_FLUSH_MS);
  timer.unref();
  socket.end(headBytes(statusLine(status), ['Connection', 'close', 'Content-Length', '0']), () => {
    clearTimeout(timer);
    socket.destroy();
  });
}
