// A plain request an http server received, relayed over a stream opened for
// it with one head written and one head read by hand: the request head is
// written as bytes and its body passed on as it comes; the answer's head is
// read with readHead and its body with RequestBody (Content-Length or
// chunked, trailers kept) or to the stream's end, then written to the
// runner's ServerResponse. No HTTP client object per request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { DENIED_BY_HEADER, deniedByRule } from './audit.ts';
import { RunnerGoneError } from './errors.ts';
import { abortReason, openExchange } from './exchange-open.ts';
import { answerFraming, RequestBody, requestBodyFraming } from './http-body.ts';
import { HeadError, headBytes, parseResponseHead, readHead, type ResponseHead } from './http-head.ts';
import { firstHeader, forwardRequestHeaders, headerPairs } from './http-headers.ts';
import { chunkPieces, lastChunk } from './http-response.ts';
import { drain, writeWithBackpressure } from './splice.ts';

/** Max bytes of the answer's head (and of a chunk-size line or its trailers). */
const MAX_RESPONSE_HEAD_BYTES = 65_536;
const LAST_CHUNK = lastChunk();

/** How a {@link relayPlain} caller shapes the request and reads its errors (a subset of RelayOptions, see http-relay.ts). */
export interface PlainRelayOptions {
  path: string;
  setHeaders?: Record<string, string>;
  dropHeaders?: string[];
  headTimeoutMs?: number;
}

const NONE: readonly string[] = [];

/** What {@link relayPlain} resolves with: the answer's head (the caller writes it), or why there is none. */
export type PlainAnswer = { head: ResponseHead; stream: Duplex; body: AnswerBody } | { error: Error };

/** The answer's body: how it is delimited, and what the stream delivered after the head. */
export interface AnswerBody {
  framing: 'none' | 'length' | 'chunked' | 'close';
  length: number;
  rest: Buffer;
}

/** The runner's headers for the stream (flat `[name, value, …]`): hop-by-hop, `Expect`, `dropHeaders` and replaced names removed; `setHeaders` added. */
export function forwardedRequestHeaders(req: IncomingMessage, opts: Pick<PlainRelayOptions, 'setHeaders' | 'dropHeaders'>): string[] {
  const dropped = opts.dropHeaders ?? NONE;
  const set = opts.setHeaders === undefined ? NONE : Object.keys(opts.setHeaders);
  // A name or two each: searched as they are, in place of a Set built per request.
  const named = (names: readonly string[], lower: string): boolean => {
    for (const n of names) if (n.toLowerCase() === lower) return true;
    return false;
  };
  // `expect`: the runner's server already answered any 100-continue.
  const headers = forwardRequestHeaders(req.rawHeaders, (lower) => lower === 'expect' || named(dropped, lower) || named(set, lower));
  for (const k of set) headers.push(k, opts.setHeaders![k]!);
  return headers;
}

/** The request head for the stream: {@link forwardedRequestHeaders}, and framing and Host as the request needs. */
export function plainRequestHead(req: IncomingMessage, opts: PlainRelayOptions, chunked: boolean): Buffer {
  const headers = forwardedRequestHeaders(req, opts);
  if (firstHeader(headers, 'host') === undefined) headers.unshift('Host', 'localhost');
  if (chunked) headers.push('Transfer-Encoding', 'chunked');
  headers.push('Connection', 'close');
  return headBytes(`${req.method ?? 'GET'} ${opts.path} HTTP/1.1`, headers);
}

/**
 * Opens the stream (raced against `runnerGone` and the head deadline),
 * writes the request head, passes the body on (re-chunked when the runner
 * sent it chunked; request trailers are not relayed), and reads the answer's
 * head, skipping interim (1xx) heads. Never rejects.
 */
export async function relayPlain(
  req: IncomingMessage,
  open: () => Promise<Duplex>,
  opts: PlainRelayOptions,
  runnerGone: AbortSignal,
  counted: { bytesIn: number },
): Promise<PlainAnswer> {
  const framing = requestBodyFraming(req.rawHeaders);
  const chunked = framing.kind === 'chunked';
  const hasBody = framing.kind === 'chunked' || framing.kind === 'length';
  const exchange = openExchange(open, runnerGone, opts.headTimeoutMs ?? 0);
  let stream: Duplex | undefined;
  const onAbort = (): void => {
    stream?.destroy(abortReason(exchange.signal));
  };
  try {
    stream = await exchange.stream;
    exchange.signal.addEventListener('abort', onAbort, { once: true });
    stream.write(plainRequestHead(req, opts, chunked));
    // A request without a body is complete with its head: the FIN leaves with it (one frame, one wakeup
    // of the agent, which reads its streams half-open). With a body, the stream is ended once the answer
    // is through (see pipeAnswer): the body's end is in its framing.
    if (hasBody) sendBody(req, stream, chunked, counted);
    else stream.end();
    let read = await readHead(stream, MAX_RESPONSE_HEAD_BYTES);
    let head = parseResponseHead(read.head);
    while (head !== undefined && head.status >= 100 && head.status < 200) {
      read = await readHead(stream, MAX_RESPONSE_HEAD_BYTES, read.rest);
      head = parseResponseHead(read.head);
    }
    if (head === undefined) {
      stream.destroy();
      return { error: new Error('the agent sent a malformed response head') };
    }
    return { head, stream, body: answerBody(req.method ?? 'GET', head, read.rest) };
  } catch (err) {
    stream?.destroy();
    if (exchange.signal.aborted) return { error: abortReason(exchange.signal) };
    if (err instanceof HeadError && err.why === 'too-large') return { error: new Error('the agent sent a response head that is too large') };
    return { error: err as Error };
  } finally {
    exchange.disarm();
    exchange.signal.removeEventListener('abort', onAbort);
  }
}

/** The runner's request body onto the stream with backpressure, counted (chunked: re-framed, last chunk at its end). A runner that goes away mid-body resets the stream. */
function sendBody(req: IncomingMessage, stream: Duplex, chunked: boolean, counted: { bytesIn: number }): void {
  req.on('data', (c: Buffer) => {
    counted.bytesIn += c.length;
    if (!chunked) {
      writeWithBackpressure(stream, c, req);
      return;
    }
    const pieces = chunkPieces(c);
    for (let i = 0; i < pieces.length - 1; i++) stream.write(pieces[i]);
    writeWithBackpressure(stream, pieces[pieces.length - 1]!, req);
  });
  req.on('end', () => {
    if (chunked && !stream.destroyed) stream.write(LAST_CHUNK);
  });
  req.on('close', () => {
    if (!req.complete) stream.destroy(new RunnerGoneError());
  });
}

/** How the answer's body is delimited ({@link answerFraming}); a framing the strict reader refuses is read to the stream's end. */
function answerBody(method: string, head: ResponseHead, rest: Buffer): AnswerBody {
  const f = answerFraming(method, head.status, head.headers);
  if (f.kind === 'refused') return { framing: 'close', length: 0, rest };
  return { framing: f.kind, length: f.kind === 'length' ? f.length : 0, rest };
}

/**
 * Writes the answer's body to `res` as it arrives (each chunk at once: WATCH
 * events are not held back), with backpressure, and its trailers, then ends
 * the stream; the body cut short destroys `res` (and resets the stream).
 */
export function pipeAnswer(stream: Duplex, body: AnswerBody, res: ServerResponse, result: { bytesOut: number; error?: Error }): void {
  // The answer is through: our side ends (FIN) and the rest is read, so the stream closes.
  const drainRest = (): void => {
    if (!stream.destroyed && !stream.writableEnded) stream.end();
    drain(stream);
  };
  const fail = (err: Error): void => {
    result.error ??= err;
    res.destroy(err);
    stream.destroy();
  };
  if (body.framing === 'none') {
    res.end();
    drainRest();
    return;
  }
  if (body.framing === 'close') {
    const onData = (c: Buffer): void => {
      result.bytesOut += c.length;
      writeWithBackpressure(res, c, stream);
    };
    if (body.rest.length > 0) onData(body.rest);
    stream.on('data', onData);
    stream.on('end', () => {
      if (!stream.destroyed && !stream.writableEnded) stream.end();
      res.end();
    });
    stream.on('close', () => {
      if (!stream.readableEnded) fail(new Error('the upstream response was cut short'));
    });
    stream.resume();
    return;
  }
  const reader = new RequestBody(stream, body.rest, body.framing === 'length' ? { kind: 'length', length: body.length } : { kind: 'chunked' }, {
    maxLineBytes: MAX_RESPONSE_HEAD_BYTES,
    onComplete: drainRest,
  });
  reader.on('data', (c: Buffer) => {
    result.bytesOut += c.length;
    writeWithBackpressure(res, c, reader);
  });
  reader.on('end', () => {
    if (reader.rawTrailers.length > 0) res.addTrailers(headerPairs(reader.rawTrailers));
    res.end();
  });
  // Ended early, reset, or malformed chunked coding: to the runner it is an answer cut short either way.
  reader.on('error', (err) => fail(new Error('the upstream response was cut short', { cause: err })));
}

/** The deny rule the agent named in its answer, if any. */
export function answerDeniedBy(head: ResponseHead): ReturnType<typeof deniedByRule> {
  return deniedByRule(firstHeader(head.headers, DENIED_BY_HEADER));
}
