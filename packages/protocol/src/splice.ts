// Moving bytes from one stream to another with backpressure, as every relay
// of the tunnel does once the heads are read.
import type { Duplex, Writable } from 'node:stream';

/** What can be paused while a destination drains: a Readable, undici's dispatch controller. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

/** Writes `chunk` to `to`; when `to` is full, pauses `source` until `to` drains. */
export function writeWithBackpressure(to: Writable, chunk: Buffer | Uint8Array, source: Pausable): void {
  if (!to.write(chunk)) {
    source.pause();
    to.once('drain', () => source.resume());
  }
}

/** Reads and drops whatever else `stream` delivers, so the far side's FIN arrives and the stream can close. */
export function drain(stream: Duplex): void {
  stream.on('data', () => {});
  stream.resume();
}

/** Where a splice counts: the bytes each way, and the first failure. */
export interface SpliceTally {
  bytesIn: number;
  bytesOut: number;
  error?: Error;
}

/** One direction of a splice, kept on its source stream (see {@link splice}). */
interface SpliceState {
  to: Duplex;
  tally: SpliceTally;
  direction: 'bytesIn' | 'bytesOut';
  onEnd: (() => void) | undefined;
  ended: boolean;
}

const SPLICE = Symbol('pipeops.splice');
type Spliced = Duplex & { [SPLICE]?: SpliceState };

/**
 * Pipes `from` → `to` with backpressure, counting into `tally[direction]`;
 * FIN of `from` ends `to` (or runs `onEnd` instead); an abnormal close of
 * `from` sets `tally.error` (the first one) and destroys `to`. The listeners
 * are shared functions and the state one object on `from`: a WATCH spliced
 * for hours holds that and nothing else.
 */
export function splice(from: Duplex, to: Duplex, tally: SpliceTally, direction: 'bytesIn' | 'bytesOut', onEnd?: () => void): void {
  (from as Spliced)[SPLICE] = { to, tally, direction, onEnd, ended: false };
  from.on('data', onSpliceData);
  // A FIN that came with the head (read before the splice began) has already ended `from`.
  if (from.readableEnded) process.nextTick(() => onSpliceEnd.call(from));
  else from.on('end', onSpliceEnd);
  from.on('error', onSpliceError);
  from.on('close', onSpliceClose);
}

function onSpliceData(this: Spliced, chunk: Buffer): void {
  const s = this[SPLICE]!;
  s.tally[s.direction] += chunk.length;
  writeWithBackpressure(s.to, chunk, this);
}

function onSpliceEnd(this: Spliced): void {
  const s = this[SPLICE]!;
  if (s.ended) return;
  s.ended = true;
  if (s.onEnd !== undefined) s.onEnd();
  else if (!s.to.destroyed) s.to.end();
}

function onSpliceError(this: Spliced, err: Error): void {
  const s = this[SPLICE]!;
  s.tally.error ??= err;
  s.to.destroy();
}

function onSpliceClose(this: Spliced): void {
  if (this.readableEnded) return;
  const s = this[SPLICE]!;
  s.tally.error ??= new Error('connection closed abruptly');
  s.to.destroy();
}

/** Two streams awaited together (see {@link whenBothClosed}), kept on both. */
interface ClosePair {
  open: number;
  resolve: () => void;
}
const PAIR = Symbol('pipeops.closePair');
type Paired = Duplex & { [PAIR]?: ClosePair };

function onPairClose(this: Paired): void {
  const p = this[PAIR]!;
  if (--p.open === 0) p.resolve();
}

/** Resolves with `value` once both `a` and `b` have closed. */
export function whenBothClosed<T>(a: Duplex, b: Duplex, value: T): Promise<T> {
  const open = (a.closed ? 0 : 1) + (b.closed ? 0 : 1);
  if (open === 0) return Promise.resolve(value);
  return new Promise<T>((resolve) => {
    const pair: ClosePair = { open, resolve: () => resolve(value) };
    for (const s of [a, b] as Paired[]) {
      if (s.closed) continue;
      s[PAIR] = pair;
      s.on('close', onPairClose);
    }
  });
}
