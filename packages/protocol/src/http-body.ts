// HTTP/1.1 request bodies read by hand (RFC 9112 §6-§7), where a relay has
// parsed the head itself (http-head.ts) and reads the body from the same
// stream: how the head delimits it, and the body as a Readable — the bytes
// of a Content-Length, or a chunked body decoded, its trailers kept.
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import { TunnelError } from './errors.ts';
import { parseFieldLine } from './http-head.ts';
import { firstHeader } from './http-headers.ts';

/** How a request head delimits its body (RFC 9112 §6.3), or why it cannot be read. */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'refused'; status: 400 | 501; message: string };

const DIGITS = /^[0-9]{1,15}$/;

/**
 * The framing of a request body from its head's headers (flat `[name,
 * value, …]`). Refused, as the strictest parsers do: both Transfer-Encoding
 * and Content-Length (a smuggling vector, RFC 9112 §6.1), more than one
 * Content-Length or one that is not a number (400), a transfer coding other
 * than `chunked` alone (501: the relay would have to decode it), chunked on
 * an HTTP/1.0 request (400).
 */
export function requestBodyFraming(raw: readonly string[], http10 = false): BodyFraming {
  let length: string | undefined;
  let lengths = 0;
  let coding: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = (raw[i] ?? '').toLowerCase();
    if (lower === 'content-length') {
      lengths += 1;
      length = raw[i + 1] ?? '';
    } else if (lower === 'transfer-encoding') coding = coding === undefined ? (raw[i + 1] ?? '') : `${coding},${raw[i + 1] ?? ''}`;
  }
  if (coding !== undefined) {
    if (lengths > 0) return { kind: 'refused', status: 400, message: 'both Transfer-Encoding and Content-Length' };
    if (coding.trim().toLowerCase() !== 'chunked') return { kind: 'refused', status: 501, message: `unsupported transfer coding: ${coding}` };
    if (http10) return { kind: 'refused', status: 400, message: 'chunked transfer coding on an HTTP/1.0 request' };
    return { kind: 'chunked' };
  }
  if (lengths > 1) return { kind: 'refused', status: 400, message: 'more than one Content-Length' };
  if (length === undefined) return { kind: 'none' };
  if (!DIGITS.test(length)) return { kind: 'refused', status: 400, message: 'malformed Content-Length' };
  const n = Number(length);
  return n === 0 ? { kind: 'none' } : { kind: 'length', length: n };
}

/** How an answer's body is delimited, or why it cannot be read (see {@link answerFraming}). */
export type AnswerFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  | { kind: 'close' }
  | { kind: 'refused'; message: string };

/**
 * How the answer to a `method` request, with `status` and headers (flat
 * `[name, value, …]`), delimits its body (RFC 9112 §6.3): none after HEAD,
 * 204 and 304 or with a Content-Length of 0, its length, chunked, to the
 * stream's end when it says neither, or refused by the rules of
 * {@link requestBodyFraming}.
 */
export function answerFraming(method: string, status: number, headers: readonly string[]): AnswerFraming {
  if (method === 'HEAD' || status === 204 || status === 304) return { kind: 'none' };
  const f = requestBodyFraming(headers);
  if (f.kind === 'refused') return { kind: 'refused', message: f.message };
  if (f.kind === 'none') return firstHeader(headers, 'content-length') !== undefined ? f : { kind: 'close' };
  return f;
}

/** A request body that cannot be read: malformed chunked coding, oversized chunk line or trailers, or a body cut short. */
export class HttpBodyError extends TunnelError {
  constructor(message: string) {
    super('PT_ERR_HTTP_BODY_INVALID', message);
    this.name = 'HttpBodyError';
  }
}

/** Options of {@link RequestBody}. */
export interface RequestBodyOptions {
  /** Max bytes of a chunk-size line and of the trailer section. Default `32_768`. */
  maxLineBytes?: number;
  /**
   * Called once, as soon as the body's last byte was read (before the
   * Readable's own `'end'`), with the bytes that came after it in the same
   * read (a request pipelined behind it; usually empty). The source is
   * paused and no longer listened to by then.
   */
  onComplete?: (excess: Buffer) => void;
}

const EMPTY = Buffer.alloc(0);
const CR = 0x0d;
const LF = 0x0a;
// chunk-size [ chunk-ext ] (RFC 9112 §7.1.1); chunk-ext is `;name[=value]`, not interpreted.
const CHUNK_LINE = /^([0-9a-fA-F]{1,12})[ \t]*(?:;[^\x00-\x08\x0a-\x1f\x7f]*)?$/;

/** Where the reader is: a chunk-size line, data, the CRLF after a chunk's data, the trailer section, or past the body. */
const State = { Size: 0, Data: 1, DataEnd: 2, Trailer: 3, Done: 4 } as const;
type State = (typeof State)[keyof typeof State];

/**
 * A request body read from `source` (which delivered `initial` already,
 * after the head) as a Readable of its bytes: exactly `length` bytes, or a
 * chunked body decoded with its trailers in {@link rawTrailers} by the time
 * it ends. Backpressure reaches `source`. A source that ends or closes
 * before the body did, or a malformed chunked coding, destroys the body with
 * an {@link HttpBodyError}; an error of the source destroys it with that.
 * Once the body is complete the source is left alone (paused, listeners
 * removed) and `onComplete` is told what followed it.
 */
export class RequestBody extends Readable {
  /** The trailer fields of a chunked body (flat `[name, value, …]`), complete when the body has ended. */
  readonly rawTrailers: string[] = [];
  readonly #source: Duplex;
  readonly #chunked: boolean;
  readonly #maxLine: number;
  readonly #onComplete: ((excess: Buffer) => void) | undefined;
  #state: State;
  /** Bytes left of the body (length) or of the current chunk (chunked). */
  #remaining: number;
  /** A partial chunk-size or trailer line, latin1. */
  #line = '';
  #trailerBytes = 0;
  /** The CR after a chunk's data was the last byte seen. */
  #sawCr = false;
  /** The CR ending `#line` was the last byte seen. */
  #lineCr = false;
  readonly #onData = (chunk: Buffer): void => {
    this.#feed(chunk);
  };
  readonly #onEnd = (): void => {
    this.#cut();
  };
  readonly #onError = (err: Error): void => {
    this.destroy(err);
  };

  constructor(source: Duplex, initial: Buffer, framing: { kind: 'length'; length: number } | { kind: 'chunked' }, o: RequestBodyOptions = {}) {
    super();
    this.#source = source;
    this.#chunked = framing.kind === 'chunked';
    this.#state = this.#chunked ? State.Size : State.Data;
    this.#remaining = framing.kind === 'length' ? framing.length : 0;
    this.#maxLine = o.maxLineBytes ?? 32_768;
    this.#onComplete = o.onComplete;
    source.on('data', this.#onData).on('end', this.#onEnd).on('close', this.#onEnd).on('error', this.#onError);
    source.pause();
    if (initial.length > 0) this.#feed(initial);
    // The source may have ended (or closed) before the body was made: its FIN came with the head.
    if (source.readableEnded || source.destroyed) this.#cut();
  }

  override _read(): void {
    if (this.#state !== State.Done && this.#source.isPaused()) this.#source.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#detach();
    callback(err);
  }

  #detach(): void {
    this.#source.off('data', this.#onData).off('end', this.#onEnd).off('close', this.#onEnd).off('error', this.#onError);
  }

  #cut(): void {
    if (this.#state !== State.Done) this.destroy(new HttpBodyError('the request body ended early'));
  }

  #fail(message: string): void {
    this.#state = State.Done;
    this.destroy(new HttpBodyError(message));
  }

  #feed(chunk: Buffer): void {
    let at = 0;
    let full = false;
    while (at < chunk.length && this.#state !== State.Done && !this.destroyed) {
      switch (this.#state) {
        case State.Data: {
          const n = Math.min(this.#remaining, chunk.length - at);
          const piece = at === 0 && n === chunk.length ? chunk : chunk.subarray(at, at + n);
          at += n;
          this.#remaining -= n;
          if (!this.push(piece)) full = true;
          if (this.#remaining === 0) {
            if (this.#chunked) this.#state = State.DataEnd;
            else this.#finish();
          }
          break;
        }
        case State.DataEnd: {
          // The CRLF after a chunk's data, possibly split across reads.
          const byte = chunk[at++]!;
          if (!this.#sawCr) {
            if (byte !== CR) {
              this.#fail('malformed chunked body: no CRLF after chunk data');
              break;
            }
            this.#sawCr = true;
          } else {
            this.#sawCr = false;
            if (byte !== LF) {
              this.#fail('malformed chunked body: no CRLF after chunk data');
              break;
            }
            this.#state = State.Size;
          }
          break;
        }
        case State.Size:
        case State.Trailer: {
          if (this.#lineCr) {
            // The line's CR ended the previous read: its LF must come first now.
            this.#lineCr = false;
            at = this.#endLineAtLf(chunk, at);
            break;
          }
          const cr = chunk.indexOf(CR, at);
          const end = cr === -1 ? chunk.length : cr;
          this.#line += chunk.toString('latin1', at, end);
          if (this.#state === State.Trailer) this.#trailerBytes += end - at;
          at = end;
          if (this.#line.length > this.#maxLine || this.#trailerBytes > this.#maxLine) {
            this.#fail(this.#state === State.Size ? 'malformed chunked body: chunk-size line too long' : 'request trailers too large');
            break;
          }
          if (cr === -1) break;
          at = cr + 1;
          if (at === chunk.length) {
            this.#lineCr = true;
            break;
          }
          at = this.#endLineAtLf(chunk, at);
          break;
        }
      }
    }
    if (this.#state === State.Done && !this.destroyed) this.#onComplete?.(at < chunk.length ? chunk.subarray(at) : EMPTY);
    if (full && this.#state !== State.Done) this.#source.pause();
  }

  /** The LF that must follow a line's CR, at `chunk[at]`: ends the line and returns the offset after it, or fails (a bare CR). */
  #endLineAtLf(chunk: Buffer, at: number): number {
    if (chunk[at] !== LF) {
      this.#fail('malformed chunked body: bare CR');
      return at;
    }
    this.#endLine();
    return at + 1;
  }

  /** A complete chunk-size or trailer line in `#line`. */
  #endLine(): void {
    const line = this.#line;
    this.#line = '';
    if (this.#state === State.Size) {
      const m = CHUNK_LINE.exec(line);
      if (m === null) {
        this.#fail('malformed chunked body: bad chunk-size line');
        return;
      }
      const size = Number.parseInt(m[1]!, 16);
      if (size === 0) {
        this.#state = State.Trailer;
        return;
      }
      this.#remaining = size;
      this.#state = State.Data;
      return;
    }
    if (line === '') {
      this.#finish();
      return;
    }
    const field = parseFieldLine(line);
    if (field === undefined) {
      this.#fail('malformed chunked body: bad trailer field');
      return;
    }
    this.rawTrailers.push(field[0], field[1]);
  }

  #finish(): void {
    this.#state = State.Done;
    this.#detach();
    this.#source.pause();
    this.push(null);
  }
}
