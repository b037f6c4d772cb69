import { MuxError } from './errors.ts';
import { FrameType, HEADER_BYTES, PROTOCOL_VERSION, readHeader, type FrameHeader } from './frame.ts';

/** Called once per complete frame; `payload` is empty for non-data frames. */
export type FrameHandler = (header: FrameHeader, payload: Buffer) => void;

/**
 * Reassembles yamux frames from a byte stream split at arbitrary points.
 *
 * - Iterative: one `push()` of 10,000 frames runs one loop, never recursion.
 * - Zero-copy when possible: a payload lying inside one received chunk is a
 *   `subarray` of it; only a payload spanning chunks is copied, once.
 * - Validates what must be known before trusting `length`: the version, the
 *   type, and (data frames) `length <= maxPayloadBytes`; violations throw
 *   MuxError `PT_ERR_MUX_PROTOCOL`, after which the decoder is unusable.
 */
export class FrameDecoder {
  #chunks: Buffer[] = [];
  #head = 0; // index of the first live chunk in #chunks
  #offset = 0; // read offset inside #chunks[#head]
  #buffered = 0; // bytes held, from (#head, #offset)
  #header: FrameHeader | undefined;
  #failed = false;
  readonly #maxPayloadBytes: number;
  readonly #onFrame: FrameHandler;

  /**
   * @param maxPayloadBytes largest data payload accepted (bytes); larger is a protocol error.
   * @param onFrame receives each frame; if it throws, the error propagates out of `push()`.
   */
  constructor(maxPayloadBytes: number, onFrame: FrameHandler) {
    this.#maxPayloadBytes = maxPayloadBytes;
    this.#onFrame = onFrame;
  }

  /** Bytes received but not yet part of a delivered frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Feeds bytes; delivers every frame they complete. `stop()` from inside a handler ends the loop. */
  push(chunk: Buffer): void {
    if (this.#failed) return;
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    while (!this.#failed) {
      if (this.#header === undefined) {
        if (this.#buffered < HEADER_BYTES) break;
        const h = readHeader(this.#take(HEADER_BYTES));
        this.#validate(h);
        this.#header = h;
      }
      const h = this.#header;
      const need = h.type === FrameType.data ? h.length : 0;
      if (this.#buffered < need) break;
      const payload = need === 0 ? EMPTY : this.#take(need);
      this.#header = undefined;
      this.#onFrame(h, payload);
    }
    this.#compact();
  }

  /** Stops decoding; later pushes are ignored and buffered bytes released. */
  stop(): void {
    this.#failed = true;
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.#buffered = 0;
  }

  #validate(h: FrameHeader): void {
    let reason: string | undefined;
    if (h.version !== PROTOCOL_VERSION) reason = `unsupported version ${h.version}`;
    else if (h.type > FrameType.goAway) reason = `unknown frame type ${h.type}`;
    else if (h.type === FrameType.data && h.length > this.#maxPayloadBytes) {
      reason = `data frame of ${h.length} bytes exceeds ${this.#maxPayloadBytes}`;
    }
    if (reason !== undefined) {
      this.stop();
      throw new MuxError('PT_ERR_MUX_PROTOCOL', reason);
    }
  }

  // Returns the next n bytes (n <= #buffered): a view when they lie in one chunk, else one copy.
  #take(n: number): Buffer {
    const first = this.#chunks[this.#head] as Buffer;
    const avail = first.length - this.#offset;
    if (avail >= n) {
      const out = first.subarray(this.#offset, this.#offset + n);
      this.#advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[this.#head] as Buffer;
      const k = Math.min(c.length - this.#offset, n - filled);
      c.copy(out, filled, this.#offset, this.#offset + k);
      filled += k;
      this.#advance(k);
    }
    return out;
  }

  #advance(n: number): void {
    this.#buffered -= n;
    this.#offset += n;
    const c = this.#chunks[this.#head];
    if (c !== undefined && this.#offset === c.length) {
      this.#chunks[this.#head] = EMPTY;
      this.#head++;
      this.#offset = 0;
    }
  }

  #compact(): void {
    if (this.#head === 0) return;
    if (this.#head >= this.#chunks.length) {
      this.#chunks = [];
    } else {
      this.#chunks = this.#chunks.slice(this.#head);
    }
    this.#head = 0;
  }
}

const EMPTY = Buffer.alloc(0);
