// The frames of a JSON watch stream: a sequence of JSON objects (the API
// server writes one per line, `pretty=true` spreads one over many lines).
// Bytes are cut at object boundaries without parsing: a scan for braces,
// brackets and strings (UTF-8 continuation bytes are all ≥ 0x80, so the
// ASCII bytes scanned for are never part of a multi-byte character).

/** One piece of the stream: a whole object (with the whitespace that follows it up to a newline), or other bytes. */
export type Piece = { kind: 'object'; bytes: Buffer } | { kind: 'space'; bytes: Buffer } | { kind: 'other'; bytes: Buffer };

const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const OPEN = new Set([0x7b, 0x5b]); // { [
const CLOSE = new Set([0x7d, 0x5d]); // } ]

/**
 * Cuts a byte stream into whole JSON objects. `push` returns the pieces
 * completed so far; an unfinished object is held (up to `maxObjectBytes`,
 * then handed out as `other`, and so is anything that is not an object).
 */
export class JsonEventSplitter {
  readonly #maxObjectBytes: number;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;
  /** An object just ended: whitespace up to the next newline still belongs to it. */
  #trailing = false;
  #broken = false;

  constructor(maxObjectBytes: number) {
    this.#maxObjectBytes = maxObjectBytes;
  }

  /** Bytes held: an object not finished yet. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** The stream was not a sequence of objects (or one was too large): everything since is `other`. */
  get broken(): boolean {
    return this.#broken;
  }

  push(chunk: Buffer): Piece[] {
    if (this.#broken) return [{ kind: 'other', bytes: chunk }];
    const out: Piece[] = [];
    let start = 0;
    const cut = (end: number, kind: Piece['kind']): void => {
      const part = chunk.subarray(start, end);
      const bytes = this.#held.length === 0 ? part : Buffer.concat([...this.#held, part]);
      this.#held = [];
      this.#heldBytes = 0;
      if (bytes.length > 0) out.push({ kind, bytes });
      start = end;
    };
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (this.#depth === 0) {
        if (this.#trailing) {
          if (SPACE.has(b)) {
            if (b === 0x0a) {
              this.#trailing = false;
              cut(i + 1, 'object');
            }
            continue;
          }
          this.#trailing = false;
          cut(i, 'object');
        }
        if (SPACE.has(b)) continue;
        if (b !== 0x7b) {
          cut(i, 'space');
          this.#broken = true;
          out.push({ kind: 'other', bytes: chunk.subarray(i) });
          return out;
        }
        if (i > start) cut(i, 'space');
        this.#depth = 1;
        continue;
      }
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (b === 0x5c) this.#escaped = true;
        else if (b === 0x22) this.#inString = false;
        continue;
      }
      if (b === 0x22) this.#inString = true;
      else if (OPEN.has(b)) this.#depth++;
      else if (CLOSE.has(b)) {
        this.#depth--;
        if (this.#depth === 0) this.#trailing = true;
      }
    }
    if (this.#trailing) {
      // The object is complete; a newline in the next chunk is handed out as whitespace.
      this.#trailing = false;
      cut(chunk.length, 'object');
    } else if (start < chunk.length) {
      if (this.#depth === 0) cut(chunk.length, 'space');
      else {
        const rest = chunk.subarray(start);
        this.#held.push(rest);
        this.#heldBytes += rest.length;
        if (this.#heldBytes > this.#maxObjectBytes) {
          this.#broken = true;
          const bytes = Buffer.concat(this.#held);
          this.#held = [];
          this.#heldBytes = 0;
          out.push({ kind: 'other', bytes });
        }
      }
    }
    return out;
  }

  /** What is held (an unfinished object), handed out as `other`, e.g. at the end of the stream. */
  flush(): Piece[] {
    if (this.#heldBytes === 0) return [];
    const bytes = Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    this.#depth = 0;
    this.#inString = false;
    this.#escaped = false;
    return [{ kind: 'other', bytes }];
  }

  /** Forgets an unfinished object (the stream was cut; a resumed one sends it again). */
  discard(): void {
    this.#held = [];
    this.#heldBytes = 0;
    this.#depth = 0;
    this.#inString = false;
    this.#escaped = false;
    this.#trailing = false;
  }
}
