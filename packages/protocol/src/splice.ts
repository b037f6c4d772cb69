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

/** Where a splice counts: the bytes each way, and the first failure. */
export interface SpliceTally { bytesIn: number; bytesOut: number; error?: Error }

/**
 * Pipes `from` → `to` with backpressure, counting into `tally[direction]`;
 * FIN of `from` ends `to` (or runs `onEnd` instead); an abnormal close of
 * `from` sets `tally.error` (the first one) and destroys `to`. Four
 * listeners on `from` and nothing else: a spliced WATCH holds one per
 * direction for as long as it lasts.
 */
export function splice(from: Duplex, to: Duplex, tally: SpliceTally, direction: 'bytesIn' | 'bytesOut', onEnd?: () => void): void {
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    if (onEnd !== undefined) onEnd();
    else if (!to.destroyed) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    tally[direction] += chunk.length;
    writeWithBackpressure(to, chunk, from);
  });
  // A FIN that came with the head (read before the splice began) has already ended `from`.
  if (from.readableEnded) process.nextTick(end);
  else from.on('end', end);
  from.on('error', (err) => { tally.error ??= err; to.destroy(); });
  from.on('close', () => { if (!from.readableEnded) { tally.error ??= new Error('connection closed abruptly'); to.destroy(); } });
}

/** Resolves with `value` once both `a` and `b` have closed. */
export function whenBothClosed<T>(a: Duplex, b: Duplex, value: T): Promise<T> {
  return new Promise<T>((resolve) => {
    let open = (a.closed ? 0 : 1) + (b.closed ? 0 : 1);
    if (open === 0) { resolve(value); return; }
    const closed = (): void => { if (--open === 0) resolve(value); };
    if (!a.closed) a.on('close', closed);
    if (!b.closed) b.on('close', closed);
  });
}
