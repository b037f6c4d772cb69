// A request body on its way to the API server, written in fewer, larger
// pieces. A body arrives as the pieces the tunnel delivered: each TLS record
// of the gateway's WebSocket (at most 16 KiB) cut again where mux and
// WebSocket headers fall, so 64 KiB of upload come as five or six pieces,
// some of a few dozen bytes. undici writes every piece it is given as its own
// TLS record and syscall, and the API server then wakes once per piece. The
// pieces that arrive within one turn of the event loop leave as one, copied
// into a buffer of the pool the upstream socket gives it back to once written
// (body-buffers.ts).
import { Readable } from 'node:stream';
import { BODY_BUFFER_BYTES, type BodyBuffers, bodyBuffers } from './body-buffers.ts';

/** The most gathered into one chunk: a piece that would go beyond passes what was gathered on first. */
const MAX_GATHERED_BYTES = BODY_BUFFER_BYTES;

/**
 * `source` as a Readable whose chunks are the pieces that arrived within one
 * turn of the event loop, copied into one buffer of `pool`, at most
 * {@link MAX_GATHERED_BYTES} each (a lone piece, or one larger than that,
 * passes as it is). Backpressure reaches `source`; its error or premature
 * close destroys the result with that error.
 */
export function coalescedBody(source: Readable, pool: BodyBuffers = bodyBuffers): Readable {
  let pieces: Buffer[] = [];
  let bytes = 0;
  let scheduled: NodeJS.Immediate | undefined;
  let ended = false;
  const out = new Readable({
    highWaterMark: MAX_GATHERED_BYTES,
    read() {
      if (source.isPaused()) source.resume();
    },
    destroy(err, callback) {
      if (scheduled !== undefined) clearImmediate(scheduled);
      pieces = [];
      source.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err !== null) source.destroy(err);
      callback(err);
    },
  });
  // Passes on what was gathered, at the end of the turn or earlier (then the turn's flush is cancelled).
  const flush = (): void => {
    if (scheduled !== undefined) clearImmediate(scheduled);
    scheduled = undefined;
    if (bytes > 0) {
      const chunk = pieces.length === 1 ? pieces[0]! : gather(pieces, bytes, pool);
      pieces = [];
      bytes = 0;
      if (!out.push(chunk)) source.pause();
    }
    if (ended) out.push(null);
  };
  const onData = (piece: Buffer): void => {
    if (bytes + piece.length > MAX_GATHERED_BYTES && bytes > 0) flush();
    pieces.push(piece);
    bytes += piece.length;
    if (bytes >= MAX_GATHERED_BYTES) flush();
    else scheduled ??= setImmediate(flush);
  };
  const onEnd = (): void => {
    ended = true;
    flush();
  };
  const onError = (err: Error): void => {
    out.destroy(err);
  };
  const onClose = (): void => {
    if (!ended) out.destroy(source.errored ?? new Error('the request body ended early'));
  };
  source.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  return out;
}

/** `pieces` (`bytes` ≤ {@link MAX_GATHERED_BYTES} in all) copied in order into a buffer of `pool`. */
function gather(pieces: Buffer[], bytes: number, pool: BodyBuffers): Buffer {
  const into = pool.take();
  let at = 0;
  for (const p of pieces) at += p.copy(into, at);
  return into.subarray(0, bytes);
}
