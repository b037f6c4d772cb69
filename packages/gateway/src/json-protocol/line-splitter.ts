/**
 * Splits a byte stream into newline-terminated lines (the `\n` is removed;
 * a final unterminated line is flushed by {@link LineSplitter.end}). Holds at
 * most `maxLineBytes` of an unfinished line: a longer one makes `push()`
 * return an error instead of buffering more.
 */
export class LineSplitter {
  readonly #maxLineBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** Feeds bytes; returns the complete lines, or `{ tooLong: true }` when one exceeds the limit. */
  push(chunk: Buffer): { lines: Buffer[]; tooLong: false } | { lines: Buffer[]; tooLong: true } {
    const lines: Buffer[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      if (this.#pendingBytes + piece.length > this.#maxLineBytes) return { lines, tooLong: true };
      lines.push(this.#pendingBytes === 0 ? piece : Buffer.concat([...this.#pending, piece]));
      this.#pending = [];
      this.#pendingBytes = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.#pendingBytes + rest.length > this.#maxLineBytes) return { lines, tooLong: true };
      this.#pending.push(rest);
      this.#pendingBytes += rest.length;
    }
    return { lines, tooLong: false };
  }

  /** The unterminated last line, if any. */
  end(): Buffer | undefined {
    if (this.#pendingBytes === 0) return undefined;
    const last = Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    return last;
  }
}
