// One HTTP/1.1 exchange on one tunnel stream, written and read by hand and
// driven by an undici DispatchHandler (the controller API): the request head
// (./request-head.ts) and body out, the answer's head, interim heads, body
// (Content-Length, chunked with its trailers, or to the stream's end) and
// trailers in, with pause/resume, abort, and undici's headers and body
// timeouts. It replaces an undici Client per request, whose end of a
// one-request connection built three Error objects with stack traces
// (~25 µs of a runner's CPU per request at 64 in flight), and its parser.
//
// The request's FIN leaves with its last byte (the agent reads a stream
// half-open), so once the answer is through the stream closes as soon as
// the far side's FIN is read: what follows the answer is read out.
import type { Duplex, Readable } from 'node:stream';
import { type Dispatcher, errors } from 'undici';
import { answerFraming, drain, HeadError, HttpBodyError, parseResponseHead, readHead, RequestBody } from '@pipeops/tunnel-protocol';
import type { PreparedRequest } from './request-head.ts';
import { expectPeerEnd } from './stream-socket.ts';

/** undici's defaults for a request that sets none. */
const DEFAULT_HEADERS_TIMEOUT_MS = 300_000;
const DEFAULT_BODY_TIMEOUT_MS = 300_000;
/** Largest response head (and chunk-size line, trailer section) read: undici's default (Node's http.maxHeaderSize). */
const MAX_HEAD_BYTES = 16_384;
/** A request body up to this size leaves in one write with its head. */
const COALESCE_BODY_BYTES = 16_384;
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
const NON_ASCII = /[\x80-\xff]/;

type Headers = Record<string, string | string[]>;

/**
 * A flat `[name, value, …]` list (values latin1, as read off the wire) as
 * undici hands headers to a handler: names in lower case, a repeated name
 * an array in order, values decoded as UTF-8.
 */
export function handlerHeaders(flat: readonly string[]): Headers {
  const out: Headers = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    const raw = flat[i + 1]!;
    const value = NON_ASCII.test(raw) ? Buffer.from(raw, 'latin1').toString('utf8') : raw;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (typeof prev === 'string') out[name] = [prev, value];
    else prev.push(value);
  }
  return out;
}

/** The exchange, and the controller its handler is given. */
export class StreamExchange implements Dispatcher.DispatchController {
  /** The answer's head as read (flat `[name, value, …]`), for handlers that look (undici's `responseHeaders: 'raw'`). */
  rawHeaders: string[] | null = null;
  rawTrailers: string[] | null = null;
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #request: PreparedRequest;
  readonly #headersTimeoutMs: number;
  readonly #bodyTimeoutMs: number;
  #stream: Duplex | undefined;
  /** The answer's body as it is read. */
  #body: Readable | undefined;
  #timer: NodeJS.Timeout | undefined;
  #aborted = false;
  #paused = false;
  #reason: Error | null = null;
  /** The handler has been told the end (onResponseEnd or onResponseError). */
  #done = false;
  /** The request's last byte is written. */
  #sent = false;

  constructor(handler: Dispatcher.DispatchHandler, request: PreparedRequest, options: Dispatcher.DispatchOptions) {
    this.#handler = handler;
    this.#request = request;
    this.#headersTimeoutMs = options.headersTimeout ?? DEFAULT_HEADERS_TIMEOUT_MS;
    this.#bodyTimeoutMs = options.bodyTimeout ?? DEFAULT_BODY_TIMEOUT_MS;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  abort(reason?: Error): void {
    if (this.#done) return;
    this.#aborted = true;
    this.#reason = reason ?? new errors.RequestAbortedError();
    this.#fail(this.#reason);
  }

  pause(): void {
    this.#paused = true;
    this.#body?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#body?.resume();
  }

  /** Starts the exchange on the stream `open()` gives. */
  start(open: () => Promise<Duplex>): void {
    try {
      this.#handler.onRequestStart?.(this, null);
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    if (this.#done) return; // aborted by the handler at once
    open().then(
      (stream) => this.#onStream(stream),
      (err: Error) => this.#fail(err),
    );
  }

  #onStream(stream: Duplex): void {
    if (this.#done) {
      stream.destroy();
      return;
    }
    this.#stream = stream;
    this.#arm(this.#headersTimeoutMs, () => new errors.HeadersTimeoutError());
    this.#send(stream);
    void this.#readAnswer(stream);
  }

  #send(stream: Duplex): void {
    const { head, body } = this.#request;
    if (body.kind === 'none') {
      stream.end(head);
      this.#requestSent();
      return;
    }
    if (body.kind === 'bytes') {
      if (body.bytes.length <= COALESCE_BODY_BYTES) stream.end(Buffer.concat([head, body.bytes]));
      else {
        stream.write(head);
        stream.end(body.bytes);
      }
      this.#bodySent(body.bytes);
      this.#requestSent();
      return;
    }
    stream.write(head);
    const { source, length } = body;
    const chunked = length === undefined;
    let written = 0;
    const onData = (piece: Buffer | string): void => {
      const chunk = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
      if (chunk.length === 0) return;
      written += chunk.length;
      if (length !== undefined && written > length) {
        this.#fail(new errors.RequestContentLengthMismatchError());
        return;
      }
      this.#bodySent(chunk);
      if (this.#done) return; // the handler's onBodySent threw: aborted
      if (chunked) stream.write(Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'));
      let more = stream.write(chunk);
      if (chunked) more = stream.write(CRLF);
      if (!more) {
        source.pause();
        stream.once('drain', () => source.resume());
      }
    };
    const onEnd = (): void => {
      if (length !== undefined && written !== length) {
        this.#fail(new errors.RequestContentLengthMismatchError());
        return;
      }
      stream.end(chunked ? LAST_CHUNK : undefined);
      this.#requestSent();
    };
    source
      .on('data', onData)
      .once('end', onEnd)
      .once('error', (err: Error) => this.#fail(err));
    stream.once('close', () => source.off('data', onData).off('end', onEnd));
  }

  #bodySent(chunk: Buffer): void {
    try {
      this.#handler.onBodySent?.(chunk);
    } catch (err) {
      this.abort(err as Error);
    }
  }

  #requestSent(): void {
    this.#sent = true;
    try {
      this.#handler.onRequestSent?.();
    } catch (err) {
      this.abort(err as Error);
    }
  }

  async #readAnswer(stream: Duplex): Promise<void> {
    let rest: Buffer | undefined;
    for (;;) {
      let read: { head: string; rest: Buffer };
      try {
        read = await readHead(stream, MAX_HEAD_BYTES, rest);
      } catch (err) {
        this.#fail(headFailure(err));
        return;
      }
      if (this.#done) return;
      rest = read.rest;
      const head = parseResponseHead(read.head);
      if (head === undefined) {
        this.#fail(parserError('invalid response head', 'INVALID_RESPONSE'));
        return;
      }
      // 100 Continue was never asked for (no Expect is sent); 101 only answers an upgrade, which undici's Client sends.
      if (head.status === 100) {
        this.#fail(new errors.SocketError('bad response'));
        return;
      }
      if (head.status === 101) {
        this.#fail(new errors.SocketError('bad upgrade'));
        return;
      }
      this.rawHeaders = head.headers;
      const headers = handlerHeaders(head.headers);
      if (head.status >= 200) {
        try {
          this.#handler.onResponseStarted?.();
        } catch {
          /* a timing hook: nothing to undo */
        }
      }
      try {
        this.#handler.onResponseStart?.(this, head.status, headers, head.reason);
      } catch (err) {
        this.abort(err as Error);
        return;
      }
      if (this.#done) return;
      if (head.status >= 200) {
        this.#readBody(stream, head.status, head.headers, rest);
        return;
      }
      // An interim head (102, 103): the final one follows; the headers deadline goes on.
    }
  }

  #readBody(stream: Duplex, status: number, headers: string[], rest: Buffer): void {
    const framing = answerFraming(this.#request.method, status, headers);
    if (framing.kind === 'refused') {
      this.#fail(parserError(framing.message, 'INVALID_TRANSFER_ENCODING'));
      return;
    }
    if (framing.kind === 'none') {
      this.#finish([], stream);
      return;
    }
    if (framing.kind === 'length') {
      this.#readLength(stream, framing.length, rest);
      return;
    }
    this.#arm(this.#bodyTimeoutMs, () => new errors.BodyTimeoutError());
    const body = framing.kind === 'chunked' ? new RequestBody(stream, rest, framing, { maxLineBytes: MAX_HEAD_BYTES }) : closeDelimitedBody(stream, rest);
    this.#body = body;
    if (framing.kind === 'close') {
      // To the stream's end: a close without it (a reset without an error) is a cut.
      stream.once('close', () => {
        if (!stream.readableEnded) this.#fail(new errors.SocketError('other side closed'));
      });
    }
    body.on('data', (chunk: Buffer) => {
      if (this.#done) return;
      this.#timer?.refresh();
      try {
        this.#handler.onResponseData?.(this, chunk);
      } catch (err) {
        this.abort(err as Error);
      }
    });
    body.once('end', () => this.#finish(body instanceof RequestBody ? body.rawTrailers : [], stream));
    body.once('error', (err: Error) => this.#fail(bodyFailure(err, stream)));
    if (this.#paused) body.pause();
  }

  /**
   * A body of `length` bytes read straight off the stream (no Readable in
   * between: a 1 GiB download is ~65,000 pieces), `rest` first; pause and
   * resume act on the stream itself.
   */
  #readLength(stream: Duplex, length: number, rest: Buffer): void {
    this.#arm(this.#bodyTimeoutMs, () => new errors.BodyTimeoutError());
    this.#body = stream;
    let left = length;
    const onData = (chunk: Buffer): void => {
      if (this.#done) return;
      const piece = chunk.length <= left ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      this.#timer?.refresh();
      try {
        this.#handler.onResponseData?.(this, piece);
      } catch (err) {
        this.abort(err as Error);
        return;
      }
      if (left > 0) return;
      stream.off('data', onData).off('end', onCut).off('close', onCut);
      this.#finish([], stream);
    };
    const onCut = (): void => {
      if (left > 0) this.#fail(new errors.SocketError('other side closed'));
    };
    stream
      .on('data', onData)
      .once('end', onCut)
      .once('close', onCut)
      .once('error', (err: Error) => this.#fail(err));
    if (rest.length > 0) onData(rest);
    if (!this.#done && !this.#paused) stream.resume();
  }

  /** The answer is complete: the handler is told, and the stream closes (at once when the request was cut short). */
  #finish(trailers: string[], stream: Duplex): void {
    if (this.#done) return;
    this.#done = true;
    this.#disarm();
    this.rawTrailers = trailers;
    if (this.#sent) {
      if (!stream.writableEnded) stream.end();
      expectPeerEnd(stream);
      drain(stream);
    } else {
      // Answered before the request's body was through (an early refusal): the rest is not sent.
      this.#stopBody();
      stream.destroy();
    }
    try {
      this.#handler.onResponseEnd?.(this, handlerHeaders(trailers));
    } catch (err) {
      try {
        this.#handler.onResponseError?.(this, err as Error);
      } catch {
        /* the handler's own failure: nothing more to tell it */
      }
    }
  }

  #fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#disarm();
    this.#stopBody();
    this.#body?.destroy();
    this.#stream?.destroy();
    try {
      this.#handler.onResponseError?.(this, err);
    } catch {
      /* the handler's own failure: nothing more to tell it */
    }
  }

  #stopBody(): void {
    if (this.#request.body.kind === 'stream' && !this.#request.body.source.destroyed) this.#request.body.source.destroy();
  }

  /** One timer for the exchange: the headers deadline, then the body's idle deadline (refreshed per chunk; not while paused). */
  #arm(ms: number, error: () => Error): void {
    this.#disarm();
    if (ms <= 0) return;
    const expire = (): void => {
      if (this.#paused) {
        this.#timer = setTimeout(expire, ms);
        this.#timer.unref();
        return;
      }
      this.#fail(error());
    };
    this.#timer = setTimeout(expire, ms);
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** undici's HTTPParserError with its `HPE_` code (its typings leave out the constructor's code argument). */
function parserError(message: string, code: string): Error {
  return new (errors.HTTPParserError as unknown as new (message: string, code: string) => Error)(message, code);
}

/** A body delimited by the stream's end (no length, not chunked): `rest`, then whatever the stream delivers. */
function closeDelimitedBody(stream: Duplex, rest: Buffer): Readable {
  if (rest.length > 0) stream.unshift(rest);
  stream.resume();
  return stream as Readable;
}

/** What a handler is told when no head came: undici's errors for the same cases, a stream's own error as it is. */
function headFailure(err: unknown): Error {
  if (err instanceof HeadError) {
    return err.why === 'too-large' ? new errors.HeadersOverflowError() : new errors.SocketError('other side closed');
  }
  return err as Error;
}

/** A body cut short by the far side's FIN is undici's "other side closed"; a reset or a malformed body keeps its error. */
function bodyFailure(err: Error, stream: Duplex): Error {
  return err instanceof HttpBodyError && stream.readableEnded ? new errors.SocketError('other side closed') : err;
}
