// The API server's HTTP/1.1 connections hand a body buffer back to its pool
// (body-buffers.ts) once they have written it. undici writes a body chunk
// with socket.write(chunk) and keeps no callback; the write's own callback
// runs only after TLS has encrypted the bytes and the kernel has taken them
// (or the write failed), so from then on nothing reads the buffer.
import type { Duplex } from 'node:stream';
import type { buildConnector as BuildConnector } from 'undici';
import { buildConnector } from './undici-parts.ts';
import { type BodyBuffers, bodyBuffers } from './body-buffers.ts';

type WriteCallback = (err?: Error | null) => void;

/** Makes `socket` give every chunk of `pool` it writes back to `pool` once written. Returns the socket. */
export function givingBackWrittenBuffers<S extends Duplex>(socket: S, pool: BodyBuffers = bodyBuffers): S {
  const write = socket.write as (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean;
  socket.write = function givingBackWrite(this: S, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (!(chunk instanceof Uint8Array) || !pool.lent(chunk)) return write.call(this, chunk, encoding, cb);
    const done = (typeof encoding === 'function' ? encoding : cb) as WriteCallback | undefined;
    const giveBack: WriteCallback = (err) => {
      pool.giveBack(chunk);
      done?.(err);
    };
    return typeof encoding === 'function' || encoding === undefined ? write.call(this, chunk, giveBack) : write.call(this, chunk, encoding, giveBack);
  } as S['write'];
  return socket;
}

/**
 * undici's connector for `options`, HTTP/1.1 only (ALPN offers nothing else:
 * undici 8 would otherwise negotiate h2, and upgrades need HTTP/1.1), each
 * socket it opens {@link givingBackWrittenBuffers giving written body buffers back}.
 */
export function bodyBufferConnector(options: BuildConnector.BuildOptions, pool: BodyBuffers = bodyBuffers): BuildConnector.connector {
  const connect = buildConnector({ ...options, allowH2: false });
  return (opts, callback) =>
    connect(opts, (err, socket) => {
      if (err === null) givingBackWrittenBuffers(socket, pool); // on an error undici passes no socket
      (callback as (e: Error | null, s: typeof socket) => void)(err, socket);
    });
}
