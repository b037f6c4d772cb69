// A plain request (every verb but the upgrades): replayed to the API server
// with undici, its answer written back on the stream as it arrives — the
// head at once (a WATCH may not send its first event for minutes), each
// chunk with backpressure, then the trailers.
//
// The exchange in flight is one object (PlainRelay, undici's handler): a
// WATCH held open for hours keeps that, its stream and undici's request,
// and no closures.
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import {
  auditTarget,
  drain,
  headerList,
  HttpBodyError,
  RawResponse,
  relayResponseHeaders,
  RequestBody,
  requestBodyFraming,
  requestInfo,
} from '@pipeops/tunnel-protocol';
import { ImpersonationTrailerError, trailerCheckedBody } from './admission.ts';
import { coalescedBody } from './coalesced-body.ts';
import type { KubeCredentials } from './credentials.ts';
import type { Exchange, ExchangeResult, KubeProxyOptions, KubeRequest } from './exchange.ts';
import { recordExchange } from './exchange-record.ts';
import { upstreamErrorReason } from './kube-metrics.ts';
import { admitRequest, refuseExchange, type Refusal } from './request-admission.ts';
import { sendRawStatus } from './status.ts';
import { guardTail } from './stream-tail.ts';
import { abortWithStream, upstreamUse } from './upstream-dispatch.ts';
import { kubeVerb } from './verb.ts';

/** Relays one plain request read from `ex`'s stream; resolves when its exchange is recorded. */
export async function relayRequest(req: KubeRequest, stream: Duplex, ex: Exchange, o: KubeProxyOptions): Promise<void> {
  const { method, url: path } = req;
  const info = requestInfo(method, path);
  const verb = kubeVerb(method, path, false, info);
  const result: ExchangeResult = { method, path, verb, status: undefined, bytesIn: 0, bytesOut: 0, upgraded: false, target: auditTarget(info) };
  const framing = requestBodyFraming(req.rawHeaders, req.http10);
  const relay = new PlainRelay(req, ex, o, result);
  if (framing.kind === 'refused') {
    relay.refuse({ code: framing.status, message: framing.message, rule: 'protocol' });
    return;
  }
  if (framing.kind === 'none') relay.bodyRead(req.rest);
  else relay.readBody(new RequestBody(stream, req.rest, framing, { maxLineBytes: o.maxHeaderBytes ?? 32_768, onComplete: (excess) => relay.bodyRead(excess) }));
  const upstream = await admitRequest(
    req,
    info,
    ex,
    o,
    { upgrade: false, protocolProblem: undefined, use: upstreamUse(verb, method, path) },
    result,
    (refusal) => relay.refuse(refusal),
  );
  if (upstream === undefined) {
    relay.dropBody();
    return;
  }
  return relay.dispatch(upstream.dispatcher, upstream.headers, upstream.credentials, framing.kind === 'chunked');
}

/** One plain exchange with the API server: the request body on its way, undici's handler for the answer. */
class PlainRelay implements Dispatcher.DispatchHandler {
  readonly #ex: Exchange;
  readonly #o: KubeProxyOptions;
  readonly #result: ExchangeResult;
  readonly #method: string;
  readonly #path: string;
  readonly #res: RawResponse;
  #body: RequestBody | undefined;
  /** The body (if any) was read to its end. */
  #bodyRead = false;
  /** A body that failed before undici read it (malformed from its first bytes, cut short during admission). */
  #bodyError: Error | undefined;
  #credentials: KubeCredentials | undefined;
  #watching = false;
  #finished = false;
  #settle: (() => void) | undefined;

  constructor(req: KubeRequest, ex: Exchange, o: KubeProxyOptions, result: ExchangeResult) {
    this.#ex = ex;
    this.#o = o;
    this.#result = result;
    this.#method = req.method;
    this.#path = req.url;
    this.#res = new RawResponse(ex.stream, req);
  }

  /** Reads the request's body (from the stream, after the head). */
  readBody(body: RequestBody): void {
    this.#body = body;
    body.on('error', (err) => {
      this.#bodyError ??= err;
    });
  }

  /** The whole request has been read; `excess` is what followed it (see guardTail). */
  bodyRead(excess: Buffer): void {
    this.#bodyRead = true;
    guardTail(this.#ex, excess);
  }

  /** Gives up the body: the request goes nowhere. */
  dropBody(): void {
    this.#body?.destroy();
  }

  /** Answers a `Status` instead of the API server, and records the exchange. */
  refuse(refusal: Refusal): void {
    this.#body?.destroy();
    refuseExchange(this.#ex, this.#result, this.#o, refusal, this.#method);
  }

  /** Sends the admitted request; resolves when the exchange is recorded. */
  dispatch(dispatcher: Dispatcher, headers: string[], credentials: KubeCredentials, chunked: boolean): Promise<void> {
    const body = this.#body;
    if (this.#bodyError !== undefined) {
      if (this.#ex.gone) recordExchange(this.#ex, this.#result, this.#o);
      else this.refuse({ code: 400, message: this.#bodyError.message, rule: 'protocol', error: this.#bodyError });
      return Promise.resolve();
    }
    this.#credentials = credentials;
    this.#watching = this.#result.verb === 'watch';
    if (this.#watching) this.#o.metrics.watchesActive.inc();
    // Only a chunked body can carry trailers; undici never forwards them, and this makes a forged one a 403.
    const upload = body === undefined ? null : chunked ? Readable.from(trailerCheckedBody(body), { objectMode: false }) : coalescedBody(body);
    return new Promise<void>((settle) => {
      this.#settle = settle;
      dispatcher.dispatch({ path: this.#path, method: this.#method, headers, body: upload }, this);
    });
  }

  #done(error?: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#ex.inFlight = undefined;
    if (this.#watching) this.#o.metrics.watchesActive.dec();
    if (error !== undefined) this.#result.error = error;
    // Answered before the whole body came (an early answer, a failure): the rest is read and dropped, so the FIN arrives.
    if (!this.#bodyRead) {
      this.#body?.destroy();
      drain(this.#ex.stream);
    }
    recordExchange(this.#ex, this.#result, this.#o);
    this.#settle?.();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    abortWithStream(this.#ex, controller);
  }

  onBodySent(chunk: Buffer | string): void {
    this.#result.bytesIn += chunk.length;
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, statusText?: string): void {
    // undici hands HTTP/2 interim heads (103 Early Hints) here too; only the final one is relayed.
    if (statusCode < 200) return;
    this.#result.status = statusCode;
    if (statusCode === 401) this.#credentials?.invalidate();
    // Over HTTP/2 there is no Content-Length on a WATCH and no reason
    // phrase: the body is then chunked and the standard phrase used, as
    // for an HTTP/1.1 chunked answer.
    this.#res.writeHead(statusCode, statusText, relayResponseHeaders(headerList(controller.rawHeaders), { trailers: true }));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#result.bytesOut += chunk.length;
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#ex.stream.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(controller: Dispatcher.DispatchController): void {
    const stream = this.#ex.stream;
    const finish = (): void => {
      stream.off('close', finish);
      this.#done();
    };
    stream.on('close', finish);
    this.#res.end(headerList(controller.rawTrailers), finish);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    const ex = this.#ex;
    if (ex.gone) {
      this.#done();
    } else if (err instanceof ImpersonationTrailerError && !this.#res.headSent) {
      this.refuse({ code: 403, message: err.message, rule: 'impersonation' });
      this.#done();
    } else if (err instanceof HttpBodyError && !this.#res.headSent) {
      this.refuse({ code: 400, message: err.message, rule: 'protocol', error: err });
      this.#done();
    } else {
      this.#o.metrics.upstreamError(upstreamErrorReason(err));
      if (!this.#res.headSent) {
        this.#result.status = 502;
        sendRawStatus(ex.stream, 502, `API server request failed: ${err.message}`, undefined, this.#method);
      } else {
        // The head is out: the only honest signal left is a reset stream.
        ex.stream.destroy(err);
      }
      this.#done(err);
    }
  }
}
