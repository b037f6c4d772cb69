// The buffers a coalesced request body is copied into, used again once the
// API server's socket has written them. Fresh buffers for every gathered
// piece of an upload were the upload's bytes allocated a second time as
// external memory, which V8 only gives back when the buffer's object dies:
// with a young generation sized for many small requests, that was in full
// mark-compacts every ~70 ms and doubled the agent's CPU per uploaded GiB.
// A buffer comes back only through giveBack (the upstream socket's write
// callback, upstream-socket.ts); one that never does (an aborted request) is
// left to the garbage collector.

/** Size of each buffer: the most a coalesced body gathers into one chunk. */
export const BODY_BUFFER_BYTES = 256 * 1024;

/** A pool of {@link BODY_BUFFER_BYTES} buffers lent out and given back. */
export class BodyBuffers {
  readonly #keep: number;
  readonly #free: Buffer[] = [];
  /** The buffers out on loan, by backing store: a chunk is ours only if its store is here. */
  readonly #lent = new WeakMap<ArrayBufferLike, Buffer>();
  #created = 0;

  /** @param keep buffers kept for reuse at most; more given back are dropped. */
  constructor(keep = 8) {
    this.#keep = keep;
  }

  /** A buffer of {@link BODY_BUFFER_BYTES} bytes (contents undefined), lent until {@link giveBack}. */
  take(): Buffer {
    let b = this.#free.pop();
    if (b === undefined) {
      b = Buffer.allocUnsafeSlow(BODY_BUFFER_BYTES);
      this.#created++;
    }
    this.#lent.set(b.buffer, b);
    return b;
  }

  /**
   * Takes back the buffer under `chunk` (any view of a lent buffer) once
   * nothing will read it again. A chunk not lent by this pool, or already
   * given back, is ignored.
   */
  giveBack(chunk: Uint8Array): void {
    const b = this.#lent.get(chunk.buffer);
    if (b === undefined) return;
    this.#lent.delete(chunk.buffer);
    if (this.#free.length < this.#keep) this.#free.push(b);
  }

  /** Whether `chunk` is a view of a buffer this pool has lent out. */
  lent(chunk: Uint8Array): boolean {
    return this.#lent.has(chunk.buffer);
  }

  /** Buffers allocated so far (for tests: reuse keeps this flat). */
  get created(): number {
    return this.#created;
  }
}

/** The agent's pool: one per process, shared by every upstream connection. */
export const bodyBuffers = new BodyBuffers();
