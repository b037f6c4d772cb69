import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { answerAndClose, closingResponse } from '@pipeops/tunnel-protocol';

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
  answerAndClose(socket, closingResponse(status, 'application/json', JSON.stringify(errorBody(code, message)), Object.entries(headers).flat()));
}
