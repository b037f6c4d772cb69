// One HTTP/1.1 response written by hand on a raw stream (RFC 9112 §6-§7),
// where a relay has read the request itself and the stream carries that one
// exchange: the head once, the body framed by its length, by chunked coding
// (trailers at its end) or by the end of the stream, then FIN.
import type { Duplex } from 'node:stream';
import { headBytes, statusLine } from './http-head.ts';

const CRLF = Buffer.from('\r\n', 'latin1');
/** Chunks up to this size go out with their chunk framing in one write (one copy); larger ones as three writes, uncopied. */
const JOIN_BELOW = 16 * 1024;

/**
 * One chunk of a chunked body (RFC 9112 §7.1) as the buffers to write, after
 * `before` (e.g. a held head) if given: joined with its size line and CRLF
 * below 16 KiB (one copy, one write), else size line, data, CRLF uncopied.
 */
export function chunkPieces(chunk: Buffer, before?: Buffer): Buffer[] {
  const size = Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1');
  if (chunk.length < JOIN_BELOW) return [Buffer.concat(before === undefined ? [size, chunk, CRLF] : [before, size, chunk, CRLF])];
  return before === undefined ? [size, chunk, CRLF] : [before, size, chunk, CRLF];
}

/** The end of a chunked body: the last chunk, `trailers` (flat `[name, value, …]`), the blank line. */
export function lastChunk(trailers: readonly string[] = []): Buffer {
  let t = '0\r\n';
  for (let i = 0; i + 1 < trailers.length; i += 2) t += `${trailers[i] ?? ''}: ${trailers[i + 1] ?? ''}\r\n`;
  return Buffer.from(`${t}\r\n`, 'latin1');
}

/** How the body of a {@link RawResponse} is delimited. */
type Framing = 'none' | 'length' | 'chunked' | 'close';

/**
 * The response to one request read from `stream` (`method`, and whether it
 * was HTTP/1.0). The body is delimited the way Node's own server does it:
 * none after HEAD, 1xx, 204 and 304; by the response's Content-Length when
 * it has one; otherwise chunked, or for an HTTP/1.0 request by the end of
 * the stream. `Connection: close` is always sent: the stream carries one
 * exchange. The head is held until the first body write or the next tick,
 * so a small answer leaves as one write.
 */
export class RawResponse {
  readonly #stream: Duplex;
  readonly #method: string;
  readonly #http10: boolean;
  #framing: Framing = 'none';
  #pendingHead: Buffer | undefined;
  #headSent = false;

  constructor(stream: Duplex, request: { method: string; http10: boolean }) {
    this.#stream = stream;
    this.#method = request.method;
    this.#http10 = request.http10;
  }

  /** True once the head is written (or held to be written). */
  get headSent(): boolean {
    return this.#headSent;
  }

  /**
   * Writes the head: status, reason (default: the standard phrase) and
   * `headers` (flat `[name, value, …]`, hop-by-hop ones already removed),
   * with the framing headers added.
   */
  writeHead(status: number, reason: string | undefined, headers: readonly string[]): void {
    if (this.#headSent) throw new Error('the response head was already written');
    this.#headSent = true;
    const bodyless = this.#method === 'HEAD' || status < 200 || status === 204 || status === 304;
    const lengthKnown = !bodyless && hasContentLength(headers);
    this.#framing = bodyless ? 'none' : lengthKnown ? 'length' : this.#http10 ? 'close' : 'chunked';
    const all = this.#framing === 'chunked' ? [...headers, 'Connection', 'close', 'Transfer-Encoding', 'chunked'] : [...headers, 'Connection', 'close'];
    this.#pendingHead = headBytes(statusLine(status, reason === undefined || reason === '' ? undefined : reason), all);
    process.nextTick(() => this.#flushHead());
  }

  /** Writes a piece of the body; returns the stream's `write` result (false: wait for `'drain'`). Dropped when the response has no body. */
  write(chunk: Buffer): boolean {
    const head = this.#takeHead();
    if (this.#framing === 'none' || chunk.length === 0) return head === undefined ? true : this.#stream.write(head);
    if (this.#framing !== 'chunked') return this.#stream.write(head === undefined ? chunk : Buffer.concat([head, chunk]));
    let ok = true;
    for (const piece of chunkPieces(chunk, head)) ok = this.#stream.write(piece);
    return ok;
  }

  /** Ends the body (with `trailers`, flat `[name, value, …]`, when chunked) and the stream; `cb` as `stream.end`'s. */
  end(trailers: readonly string[] = [], cb?: (err?: Error | null) => void): void {
    const parts: Buffer[] = [];
    const head = this.#takeHead();
    if (head !== undefined) parts.push(head);
    if (this.#framing === 'chunked') parts.push(lastChunk(trailers));
    if (parts.length === 0) this.#stream.end(cb);
    else this.#stream.end(parts.length === 1 ? parts[0] : Buffer.concat(parts), cb);
  }

  #takeHead(): Buffer | undefined {
    const head = this.#pendingHead;
    this.#pendingHead = undefined;
    return head;
  }

  #flushHead(): void {
    const head = this.#takeHead();
    if (head !== undefined && !this.#stream.destroyed && !this.#stream.writableEnded) this.#stream.write(head);
  }
}

function hasContentLength(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]?.toLowerCase() === 'content-length') return true;
  return false;
}
