// Moving bytes from one stream to another with backpressure, as every relay
// of the tunnel does once the heads are read.
import type { Duplex, Writable } from 'node:stream';

/** What can be paused while a destination drains: a Readable, undici's dispatch controller. */
export interface Pausable { pause(): void; resume(): void }

/** Writes `chunk` to `to`; when `to` is full, pauses `source` until `to` drains. */
export function writeWithBackpressure(to: Writable, chunk: Buffer | Uint8Array, source: Pausable): void {
  if (!to.write(chunk)) {
    source.pause();
    to.once('drain', () => source.resume());
  }
}

/**
 * Pipes `from` → `to` with backpressure; FIN of `from` ends `to` (or runs
 * `onEnd` instead); an abnormal close of `from` destroys `to`.
 */
export function splice(from: Duplex, to: Duplex, count: (n: number) => void, failed: (err: Error) => void, onEnd?: () => void): void {
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    writeWithBackpressure(to, chunk, from);
  });
  const ended = (): void => {
    if (onEnd !== undefined) onEnd();
    else if (!to.destroyed) to.end();
  };
  // A FIN that came with the head (read before the splice began) has already ended `from`.
  if (from.readableEnded) process.nextTick(ended);
  else from.once('end', ended);
  from.on('error', (err) => { failed(err); to.destroy(); });
  from.once('close', () => { if (!from.readableEnded) { failed(new Error('connection closed abruptly')); to.destroy(); } });
}
