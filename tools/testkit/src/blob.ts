import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';

/** Size of the pieces {@link blobChunks} yields, in bytes. */
export const BLOB_CHUNK_BYTES = 65_536;
const ZEROS = Buffer.alloc(BLOB_CHUNK_BYTES);

/**
 * The deterministic pseudo-random bytes of the fake API server's
 * `GET /blob?bytes=N&seed=S`, in {@link BLOB_CHUNK_BYTES} pieces: AES-256-CTR
 * keystream keyed by the seed (fast: several hundred MiB/s), so the same
 * `(bytes, seed)` always gives the same bytes and a test can compute the
 * expected digest with {@link blobSha256} without holding the body.
 */
export function* blobChunks(bytes: number, seed: string): Generator<Buffer> {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`blob: bytes must be a non-negative integer, got ${bytes}`);
  const key = createHash('sha256').update(`pipeops-testkit-blob:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  for (let left = bytes; left > 0; left -= BLOB_CHUNK_BYTES) {
    yield cipher.update(left >= BLOB_CHUNK_BYTES ? ZEROS : ZEROS.subarray(0, left));
  }
}

/** A byte stream (not object mode) of {@link blobChunks}: an upload body for `POST /sink`. */
export function blobStream(bytes: number, seed: string): Readable {
  return Readable.from(blobChunks(bytes, seed), { objectMode: false });
}

/** Hex SHA-256 of the `bytes` blob bytes for `seed`: what `GET /blob?bytes=N&seed=S` must arrive as. */
export function blobSha256(bytes: number, seed: string): string {
  const hash = createHash('sha256');
  for (const chunk of blobChunks(bytes, seed)) hash.update(chunk);
  return hash.digest('hex');
}
