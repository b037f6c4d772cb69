import { MuxError } from './errors.ts';
import { FrameType, HEADER_BYTES, PROTOCOL_VERSION, readHeader, type FrameHeader } from './frame.ts';

/**
 * Called for each piece of each frame, in order. A frame without payload
 * (window update, ping, GoAway, empty data) is one call with an empty
 * `piece`, `first` and `last` both true. A data payload split across
 * received chunks arrives as several pieces, each a view of the chunk it
 * came in: `first` on the first, `last` on the one that completes it.
 */
export type FramePieceHandler = (header: FrameHeader, piece: Buffer, first: boolean, last: boolean) => void;

/**
 * Reads yamux frames from a byte stream split at arbitrary points, without
 * assembling payloads: every payload byte is handed on as a view of the
 * chunk it arrived in, so relaying a data frame costs no copy and no
 * allocation beyond the view. Only a header split across chunks is copied
 * (12 bytes).
 *
 * - Iterative: one `push()` of 10,000 frames runs one loop, never recursion.
 * - Validates what must be known before trusting `length`: the version, the
 *   type, and (data frames) `length <= maxPayloadBytes`; a violation throws
 *   MuxError `PT_ERR_MUX_PROTOCOL`, after which the reader is unusable.
 * - `stop()` from inside a handler ends the loop; later pushes are ignored.
 */
export class FrameReader {
  readonly #header = Buffer.allocUnsafe(HEADER_BYTES);
  #headerFill = 0; // bytes of a split header gathered in #header
  #frame: FrameHeader | undefined; // the frame whose payload is being read
  #remaining = 0; // payload bytes of #frame not yet handed on
  #first = true;
  #stopped = false;
  #buffered = 0;
  readonly #maxPayloadBytes: number;
  readonly #onPiece: FramePieceHandler;

  /**
   * @param maxPayloadBytes largest data payload accepted (bytes); larger is a protocol error.
   * @param onPiece receives each piece; if it throws, the error propagates out of `push()`.
   */
  constructor(maxPayloadBytes: number, onPiece: FramePieceHandler) {
    this.#maxPayloadBytes = maxPayloadBytes;
    this.#onPiece = onPiece;
  }

  /** Bytes of a split header held (0–11): payload bytes are never held. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Feeds bytes; hands on every piece they carry. */
  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (!this.#stopped) {
      let f = this.#frame;
      if (f === undefined) {
        if (this.#headerFill === 0 && end - pos >= HEADER_BYTES) {
          f = readHeader(chunk, pos);
          pos += HEADER_BYTES;
        } else {
          const k = Math.min(HEADER_BYTES - this.#headerFill, end - pos);
          if (k === 0) break;
          chunk.copy(this.#header, this.#headerFill, pos, pos + k);
          this.#headerFill += k;
          pos += k;
          this.#buffered = this.#headerFill;
          if (this.#headerFill < HEADER_BYTES) break;
          this.#headerFill = 0;
          this.#buffered = 0;
          f = readHeader(this.#header);
        }
        this.#validate(f);
        this.#frame = f;
        this.#remaining = f.type === FrameType.data ? f.length : 0;
        this.#first = true;
        if (this.#remaining === 0) {
          this.#frame = undefined;
          this.#onPiece(f, EMPTY, true, true);
          continue;
        }
      }
      const n = Math.min(this.#remaining, end - pos);
      if (n === 0) break;
      const piece = n === end && pos === 0 ? chunk : chunk.subarray(pos, pos + n);
      pos += n;
      this.#remaining -= n;
      const first = this.#first;
      this.#first = false;
      const last = this.#remaining === 0;
      if (last) this.#frame = undefined;
      this.#onPiece(f, piece, first, last);
    }
  }

  /** Stops reading; later pushes are ignored. */
  stop(): void {
    this.#stopped = true;
    this.#frame = undefined;
    this.#headerFill = 0;
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
}

const EMPTY = Buffer.alloc(0);
