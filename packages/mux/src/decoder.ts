import type { FrameHeader } from './frame.ts';
import { FrameReader } from './frame-reader.ts';

/** Called once per complete frame; `payload` is empty for non-data frames. */
export type FrameHandler = (header: FrameHeader, payload: Buffer) => void;

/**
 * Reassembles whole yamux frames from a byte stream split at arbitrary
 * points, on top of {@link FrameReader}: a payload lying inside one received
 * chunk is a view of it; a payload spanning chunks is copied, once. The
 * session itself reads pieces and never assembles; this is for callers
 * that want frames whole (tests, tools). Same validation and errors as
 * {@link FrameReader}.
 */
export class FrameDecoder {
  readonly #reader: FrameReader;
  #pieces: Buffer[] = [];
  #held = 0;

  /**
   * @param maxPayloadBytes largest data payload accepted (bytes); larger is a protocol error.
   * @param onFrame receives each frame; if it throws, the error propagates out of `push()`.
   */
  constructor(maxPayloadBytes: number, onFrame: FrameHandler) {
    this.#reader = new FrameReader(maxPayloadBytes, (h, piece, first, last) => {
      if (first && last) {
        onFrame(h, piece);
        return;
      }
      this.#pieces.push(piece);
      this.#held += piece.length;
      if (!last) return;
      const payload = Buffer.concat(this.#pieces, this.#held);
      this.#pieces = [];
      this.#held = 0;
      onFrame(h, payload);
    });
  }

  /** Bytes received but not yet part of a delivered frame. */
  get bufferedBytes(): number {
    return this.#reader.bufferedBytes + this.#held;
  }

  /** Feeds bytes; delivers every frame they complete. `stop()` from inside a handler ends the loop. */
  push(chunk: Buffer): void {
    this.#reader.push(chunk);
  }

  /** Stops decoding; later pushes are ignored and buffered bytes released. */
  stop(): void {
    this.#reader.stop();
    this.#pieces = [];
    this.#held = 0;
  }
}
