import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';

/**
 * Reads a stream to its 'end' without destroying it (unlike `for await`,
 * which destroys the stream when the loop finishes, cutting a half-closed
 * stream's write side).
 */
export function readAll(r: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    r.on('data', (c: Buffer) => parts.push(c));
    r.once('end', () => resolve(Buffer.concat(parts)));
    r.once('error', reject);
    r.once('close', () => {
      if (!r.readableEnded) reject(new Error('stream closed before end'));
    });
  });
}

/** sha256 hex of the stream's bytes, and the byte count; does not destroy the stream. */
export function hashAll(r: Readable): Promise<{ sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    r.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
    });
    r.once('end', () => resolve({ sha256: h.digest('hex'), bytes }));
    r.once('error', reject);
    r.once('close', () => {
      if (!r.readableEnded) reject(new Error('stream closed before end'));
    });
  });
}

/** Deterministic pseudo-random bytes (xorshift), cheap to generate. */
export function payload(bytes: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  for (let i = bytes - (bytes % 4); i < bytes; i++) b[i] = i & 0xff;
  return b;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Polls `cond` until true or `deadlineMs` passes (then throws). Not a sleep: it waits for an observable condition. */
export async function waitFor(cond: () => boolean, deadlineMs = 5_000, what = 'condition'): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** Resolves on 'close' without attaching an 'error' listener (unlike events.once). */
export function closed(s: NodeJS.EventEmitter & { destroyed?: boolean; closed?: boolean }): Promise<void> {
  if (s.closed === true) return Promise.resolve();
  return new Promise((resolve) => s.once('close', () => resolve()));
}

/** Writes `data` to `s` in pieces of `chunk` bytes with backpressure, then ends it; `written()` is the count handed over so far. */
export function pump(s: Writable, data: Buffer, chunk: number): { written: () => number } {
  let written = 0;
  const go = (): void => {
    while (written < data.length) {
      const ok = s.write(data.subarray(written, written + chunk));
      written += chunk;
      if (!ok) {
        s.once('drain', go);
        return;
      }
    }
    s.end();
  };
  go();
  return { written: () => written };
}
