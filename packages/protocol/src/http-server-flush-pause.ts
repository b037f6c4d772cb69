// Node's HTTP server stops reading a keep-alive connection when a request
// head arrives while the previous answer is still being flushed (its
// pipelining guard: the socket `needDrain`, or queued output over the
// high-water mark): it pauses the socket at once and the parser once the
// current chunk is parsed. Over TLS the parser reads the TLS handle itself,
// and a handle that decrypted several records in one read hands the rest
// to the now-paused parser, which fails with HPE_PAUSED: the server resets
// a connection whose request was fine. Clients that wait for an answer
// before the next request (Go's net/http, undici) meet this whenever an
// answer's last bytes and their next request cross: `pnpm soak` saw it as
// an upload reset after a large download on the same connection, about
// once in 5,000 exchanges.
//
// When nothing but an answer that is already complete stands before the
// new request, there is no flood to hold back: the request is read on.
// Real pipelining (an answer not yet complete ahead of it) keeps Node's
// pause.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Exchanges on a socket whose answer has not closed yet (this module's count). */
const kOpenExchanges = Symbol('pipeops.openExchanges');

/** The parts of Node's server socket state this module reads and resets. */
interface ServerSocket extends Socket {
  /** Set by the pipelining guard; the parser is paused after the chunk when still set. */
  _paused?: boolean;
  /** The answer that owns the socket now (an earlier one until it finishes). */
  _httpMessage?: ServerResponse | null;
  [kOpenExchanges]?: number;
}

/**
 * Call first in a server's `'request'` listener (before anything reads
 * the request). Undoes the pipelining guard's pause when the only answer
 * ahead of this request has been ended and is just flushing; counts the
 * connection's open exchanges to tell. Returns whether it resumed reading.
 */
export function readOnWhileFlushing(req: IncomingMessage, res: ServerResponse): boolean {
  const socket = req.socket as ServerSocket | null;
  if (socket === null) return false;
  const before = socket[kOpenExchanges] ?? 0;
  socket[kOpenExchanges] = before + 1;
  res.once('close', () => {
    socket[kOpenExchanges] = (socket[kOpenExchanges] ?? 1) - 1;
  });
  if (socket._paused !== true) return false;
  const ahead = socket._httpMessage;
  const onlyFlushing = before === 0 || (before === 1 && ahead !== undefined && ahead !== null && ahead !== res && ahead.writableEnded);
  if (!onlyFlushing) return false;
  socket._paused = false;
  socket.resume();
  return true;
}
