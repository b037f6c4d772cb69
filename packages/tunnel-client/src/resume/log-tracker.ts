// What a resumable `logs -f` (`follow=true&timestamps=true`) has delivered:
// the last line's timestamp and the lines that carry exactly it. A resumed
// follow asks for `sinceTime` = that timestamp cut to whole seconds (the
// kubelet reads sinceTime to the second), so it repeats the lines of that
// second: the ones older than the last timestamp are dropped, and of those
// with the same timestamp, the ones delivered are recognised in order and
// dropped, the first line that differs ends the skipping. Lines are passed on
// whole, so a cut mid-line loses nothing.

/** Longest line held while it is incomplete (bytes); a longer one stops the tracking. */
export const MAX_LOG_LINE_BYTES = 16 * 1024 * 1024;
/** Most lines remembered with one timestamp (and their bytes): beyond either, the follow is not resumed. */
export const MAX_SAME_TIMESTAMP_LINES = 10_000;
export const MAX_SAME_TIMESTAMP_BYTES = 4 * 1024 * 1024;

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}) /;

/** Nanoseconds since the epoch of the RFC 3339 timestamp that starts `line` (what `timestamps=true` prefixes), or undefined. */
export function lineTimestamp(line: Buffer): bigint | undefined {
  const m = TIMESTAMP.exec(line.subarray(0, 48).toString('latin1'));
  if (m === null) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** `ns` as RFC 3339 in UTC, whole seconds (rounded down). */
export function sinceTimeOf(ns: bigint): string {
  const seconds = ns / 1_000_000_000n - (ns < 0n && ns % 1_000_000_000n !== 0n ? 1n : 0n);
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export class LogTracker {
  #held: Buffer[] = [];
  #heldBytes = 0;
  #last: bigint | undefined;
  #atLast: Buffer[] = [];
  #atLastBytes = 0;
  #delivered = 0;
  /** A line without a timestamp was delivered, or one was too long: the tracking has stopped. */
  #problem: string | undefined;
  /** Too many lines with the current timestamp to recognise them again. */
  #overflow = false;
  #raw = false;
  /** After a resume: index into #atLast of the next line expected again, or undefined when not skipping. */
  #skip: number | undefined;

  /** Lines passed on so far. */
  get delivered(): number {
    return this.#delivered;
  }

  /** `sinceTime` for a resume (the last line's timestamp, whole seconds), undefined before the first line. */
  sinceTime(): string | undefined {
    return this.#last === undefined ? undefined : sinceTimeOf(this.#last);
  }

  /** Why the follow cannot be resumed, or undefined when it can. */
  notResumable(): string | undefined {
    return (
      this.#problem ?? (this.#overflow ? `more than ${MAX_SAME_TIMESTAMP_LINES} lines (or ${MAX_SAME_TIMESTAMP_BYTES} bytes) with one timestamp` : undefined)
    );
  }

  /** Whole lines of `chunk` to pass on (repeats after a resume left out). */
  push(chunk: Buffer): Buffer[] {
    if (this.#raw) return [chunk];
    const out: Buffer[] = [];
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, start)) {
      const part = chunk.subarray(start, i + 1);
      const line = this.#held.length === 0 ? part : Buffer.concat([...this.#held, part]);
      this.#held = [];
      this.#heldBytes = 0;
      start = i + 1;
      if (this.#line(line)) out.push(line);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#held.push(rest);
      this.#heldBytes += rest.length;
      if (this.#heldBytes > MAX_LOG_LINE_BYTES) {
        this.#problem = `a line longer than ${MAX_LOG_LINE_BYTES} bytes`;
        this.#raw = true;
        out.push(Buffer.concat(this.#held));
        this.#held = [];
        this.#heldBytes = 0;
      }
    }
    return out;
  }

  /** At a normal end: a last line without a newline is passed on. */
  flush(): Buffer[] {
    if (this.#heldBytes === 0) return [];
    const line = Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    return this.#line(line) ? [line] : [];
  }

  /** The stream was cut: an unfinished line is dropped (the resumed follow sends it again). */
  cut(): void {
    this.#held = [];
    this.#heldBytes = 0;
  }

  /** A resumed follow starts: lines already delivered are recognised and dropped. */
  resumed(): void {
    if (this.#last !== undefined) this.#skip = 0;
  }

  /** Records one whole line; true when it is passed on. */
  #line(line: Buffer): boolean {
    const ts = lineTimestamp(line);
    if (this.#skip !== undefined && this.#last !== undefined && ts !== undefined) {
      if (ts < this.#last) return false;
      if (ts === this.#last) {
        const seen = this.#atLast[this.#skip];
        if (seen?.equals(line)) {
          this.#skip++;
          return false;
        }
      }
    }
    this.#skip = undefined;
    this.#delivered++;
    if (ts === undefined) {
      this.#problem ??= 'a line without a timestamp';
      return true;
    }
    if (ts !== this.#last) {
      this.#last = ts;
      this.#atLast = [];
      this.#atLastBytes = 0;
      this.#overflow = false;
    }
    if (this.#atLast.length < MAX_SAME_TIMESTAMP_LINES && this.#atLastBytes + line.length <= MAX_SAME_TIMESTAMP_BYTES) {
      this.#atLast.push(line);
      this.#atLastBytes += line.length;
    } else {
      this.#overflow = true;
    }
    return true;
  }
}
