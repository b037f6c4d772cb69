// The bytes of every stream kind, computed the same way by the chaos
// upstream (which sends them) and the runner (which checks them): the blob
// is the testkit's seeded AES-CTR keystream, WATCH events and log lines are
// seeded text. Nothing is held whole: the runner hashes as it reads.
import { createHash } from 'node:crypto';
import { blobChunks } from '@pipeops/tunnel-testkit';
import { prng } from './prng.ts';

/** The blob of `GET /chaos/blob` and `/chaos/chunked`, split into pieces of 1 … `maxPiece` bytes chosen from the seed (for the chunked route). */
export function* blobPieces(bytes: number, seed: string, maxPiece: number): Generator<Buffer> {
  const rnd = prng(hashSeed(`pieces:${seed}`));
  for (const chunk of blobChunks(bytes, seed)) {
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(chunk.length - at, rnd.int(1, maxPiece));
      yield chunk.subarray(at, at + n);
      at += n;
    }
  }
}

/** The `count` WATCH events (one JSON line each) of `GET …/pods?watch=true&events=count&seed=seed`. */
export function* watchEvents(count: number, seed: string): Generator<string> {
  const rnd = prng(hashSeed(`watch:${seed}`));
  for (let i = 0; i < count; i++) {
    const name = `chaos-${rnd.int(0, 9999)}`;
    const object = {
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { name, namespace: 'default', resourceVersion: String(1000 + i), labels: { run: seed } },
      status: { phase: rnd.pick(['Pending', 'Running', 'Succeeded']), message: 'x'.repeat(rnd.int(0, 2_000)) },
    };
    yield `${JSON.stringify({ type: rnd.pick(['ADDED', 'MODIFIED', 'DELETED']), object })}\n`;
  }
}

/** The `count` lines of `GET …/pods/web-0/log?follow=true&lines=count&seed=seed`, each with its RFC 3339 timestamp. */
export function* logLines(count: number, seed: string): Generator<string> {
  const rnd = prng(hashSeed(`logs:${seed}`));
  const t0 = Date.UTC(2026, 0, 1);
  for (let i = 0; i < count; i++) {
    yield `${new Date(t0 + i * 1000).toISOString()} line ${i} ${'y'.repeat(rnd.int(0, 1_500))}\n`;
  }
}

/** Bytes and SHA-256 (hex) of everything `pieces` yields. */
export function digestOf(pieces: Iterable<string | Buffer>): { bytes: number; sha256: string } {
  const hash = createHash('sha256');
  let bytes = 0;
  for (const p of pieces) {
    const b = typeof p === 'string' ? Buffer.from(p) : p;
    bytes += b.length;
    hash.update(b);
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** A 32-bit number from a string (FNV-1a). */
export function hashSeed(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
