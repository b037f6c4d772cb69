// Answers written straight on a raw connection, after which it is closed:
// a refused upgrade or CONNECT (the socket Node handed over), and a
// connection Node's HTTP parser gave up on (a malformed or late request
// head; installed as the server's 'clientError' listener, with which Node
// leaves the socket to us). The gateway, the agent and tunnel-client's local
// proxy share these, so that kubectl gets a 400, not a bare EOF, from any of
// them, and so that no such socket outlives its answer: a half-closed socket
// whose peer's FIN is never read would stay open for ever (found by the
// listener fuzzing, test/fuzz-listeners.test.ts).
import type { Duplex } from 'node:stream';
import { headBytes, statusLine } from './http-head.ts';

/** How long {@link closeWithStatus} waits for its answer to be flushed before destroying the socket anyway (ms). */
const CLOSE_FLUSH_MS = 1_000;

/** Node's own choice of status for each parser error (lib/_http_server.js socketOnError). */
export function clientErrorStatus(code: string | undefined): number {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 408;
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return 413;
    default:
      return 400;
  }
}

/**
 * Ends a connection the HTTP parser gave up on: a bodiless `status` answer
 * when no response is under way on it, then the socket is destroyed, once
 * the answer is flushed or after {@link CLOSE_FLUSH_MS} if the client does not
 * read. Never leaves a half-closed socket behind (servers allow half-open
 * connections).
 */
export function closeWithStatus(socket: Duplex, status: number): void {
  if (socket.destroyed) return;
  // Node's own check (lib/_http_server.js): never write into a response that has started.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  answerAndClose(socket, headBytes(statusLine(status), ['Connection', 'close', 'Content-Length', '0']));
}

/**
 * Writes `response` (a complete HTTP/1.1 response with `Connection: close`)
 * on a raw socket and ends it; then the socket is destroyed once the answer
 * is flushed (or after {@link CLOSE_FLUSH_MS} if the peer does not read).
 * With `drain`, it is not destroyed: what the peer still sends is read and
 * dropped, and the socket closes when the peer ends too. That is for a mux
 * stream, where a reset right behind the response can reach the runner
 * before it has read the response.
 */
export function answerAndClose(socket: Duplex, response: Buffer, o: { drain?: boolean } = {}): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.on('error', () => socket.destroy());
  if (o.drain === true) {
    socket.resume();
    socket.end(response);
    return;
  }
  const timer = setTimeout(() => socket.destroy(), CLOSE_FLUSH_MS);
  timer.unref();
  socket.end(response, () => {
    clearTimeout(timer);
    socket.destroy();
  });
}

/** The 'clientError' answer: {@link closeWithStatus} with {@link clientErrorStatus}; returns the status sent. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): number {
  const status = clientErrorStatus(err.code);
  closeWithStatus(socket, status);
  return status;
}
