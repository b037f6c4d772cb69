// A plain request (every verb but the upgrades): replayed to the API server
// with undici, its answer written back on the stream as it arrives — the
// head at once (a WATCH may not send its first event for minutes), each
// chunk with backpressure, then the trailers.
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import { auditTarget, headerList, HttpBodyError, RawResponse, relayResponseHeaders, RequestBody, requestBodyFraming, requestInfo } from '@pipeops/tunnel-protocol';
import { ImpersonationTrailerError, trailerCheckedBody } from './admission.ts';
import { coalescedBody } from './coalesced-body.ts';
import type { Exchange, ExchangeResult, KubeProxyOptions, KubeRequest } from './exchange.ts';
import { recordExchange, refusedWith } from './exchange-record.ts';
import { upstreamErrorReason } from './kube-metrics.ts';
import { admitRequest, type Refusal } from './request-admission.ts';
import { sendRawStatus } from './status.ts';
import { drain, guardTail } from './stream-tail.ts';
import { abortWithStream, upstreamUse } from './upstream-dispatch.ts';
import { kubeVerb } from './verb.ts';

/** Relays one plain request read from `ex`'s stream; resolves when its exchange is recorded. */
export async function relayRequest(req: KubeRequest, stream: Duplex, ex: Exchange, o: KubeProxyOptions): Promise<void> {
  const { method, url: path } = req;
  const info = requestInfo(method, path);
  const verb = kubeVerb(method, path, false, info);
  const result: ExchangeResult = { method, path, verb, status: undefined, bytesIn: 0, bytesOut: 0, upgraded: false, target: auditTarget(info) };
  const framing = requestBodyFraming(req.rawHeaders, req.http10);
  let body: RequestBody | undefined;
  const answer = (refusal: Refusal): void => {
    body?.destroy();
    drain(stream);
    sendRawStatus(stream, refusal.code, refusal.message, refusal.rule, method);
    refusedWith(result, refusal);
    recordExchange(ex, result, o);
  };
  if (framing.kind === 'refused') {
    answer({ code: framing.status, message: framing.message, rule: 'protocol' });
    return;
  }
  let bodyRead = false;
  // A body that fails before undici reads it (malformed from its first bytes, cut short during admission) is answered 400 below.
  let bodyError: Error | undefined;
  if (framing.kind === 'none') { bodyRead = true; guardTail(ex, req.rest); }
  else {
    body = new RequestBody(stream, req.rest, framing, { maxLineBytes: o.maxHeaderBytes ?? 32_768, onComplete: (excess) => { bodyRead = true; guardTail(ex, excess); } });
    body.on('error', (err) => { bodyError ??= err; });
  }
  const upstream = await admitRequest(req, info, ex, o, { upgrade: false, protocolProblem: undefined, use: upstreamUse(verb, method, path) }, result, answer);
  if (upstream === undefined) { body?.destroy(); return; }
  if (bodyError !== undefined) {
    if (ex.gone) recordExchange(ex, result, o);
    else answer({ code: 400, message: bodyError.message, rule: 'protocol', error: bodyError });
    return;
  }
  const { dispatcher, headers, credentials } = upstream;
  const watching = verb === 'watch';
  if (watching) o.metrics.watchesActive.inc();
  let finished = false;
  const done = (error?: unknown): void => {
    if (finished) return;
    finished = true;
    delete ex.abort;
    if (watching) o.metrics.watchesActive.dec();
    if (error !== undefined) result.error = error;
    // Answered before the whole body came (an early answer, a failure): the rest is read and dropped, so the FIN arrives.
    if (!bodyRead) { body?.destroy(); drain(stream); }
    recordExchange(ex, result, o);
  };
  // Only a chunked body can carry trailers; undici never forwards them, and this makes a forged one a 403.
  const upload = body === undefined ? null : framing.kind === 'chunked' ? Readable.from(trailerCheckedBody(body), { objectMode: false }) : coalescedBody(body);
  const res = new RawResponse(stream, req);
  await new Promise<void>((settle) => {
    dispatcher.dispatch({ path, method, headers, body: upload }, {
      onRequestStart(controller) {
        abortWithStream(ex, controller);
      },
      onBodySent(chunk) {
        result.bytesIn += chunk.length;
      },
      onResponseStart(controller, statusCode, _headers, statusText) {
        // undici hands HTTP/2 interim heads (103 Early Hints) here too; only the final one is relayed.
        if (statusCode < 200) return;
        result.status = statusCode;
        if (statusCode === 401) credentials.invalidate();
        // Over HTTP/2 there is no Content-Length on a WATCH and no reason
        // phrase: the body is then chunked and the standard phrase used, as
        // for an HTTP/1.1 chunked answer.
        res.writeHead(statusCode, statusText, relayResponseHeaders(headerList(controller.rawHeaders), { trailers: true }));
      },
      onResponseData(controller, chunk) {
        result.bytesOut += chunk.length;
        if (!res.write(chunk)) {
          controller.pause();
          stream.once('drain', () => controller.resume());
        }
      },
      onResponseEnd(controller) {
        const finish = (): void => { stream.off('close', finish); done(); settle(); };
        stream.once('close', finish);
        res.end(headerList(controller.rawTrailers), finish);
      },
      onResponseError(_controller, err) {
        if (ex.gone) {
          done();
        } else if (err instanceof ImpersonationTrailerError && !res.headSent) {
          answer({ code: 403, message: err.message, rule: 'impersonation' });
          done();
        } else if (err instanceof HttpBodyError && !res.headSent) {
          answer({ code: 400, message: err.message, rule: 'protocol', error: err });
          done();
        } else {
          o.metrics.upstreamError(upstreamErrorReason(err));
          if (!res.headSent) {
            result.status = 502;
            sendRawStatus(stream, 502, `API server request failed: ${err.message}`, undefined, method);
          } else {
            // The head is out: the only honest signal left is a reset stream.
            stream.destroy(err);
          }
          done(err);
        }
        settle();
      },
    });
  });
}
