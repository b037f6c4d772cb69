// A plain request (every verb but the upgrades): replayed to the API server
// with undici, its answer written back on the stream's ServerResponse as it
// arrives — the head at once (a WATCH may not send its first event for
// minutes), each chunk with backpressure, then the trailers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { auditTarget, headerList, headerPairs, relayResponseHeaders, requestInfo, writeWithBackpressure } from '@pipeops/tunnel-protocol';
import { ImpersonationTrailerError, trailerCheckedBody } from './admission.ts';
import { coalescedBody } from './coalesced-body.ts';
import type { Exchange, ExchangeResult, KubeProxyOptions } from './exchange.ts';
import { recordExchange, refusedWith } from './exchange-record.ts';
import { upstreamErrorReason } from './kube-metrics.ts';
import { admitRequest, type Refusal } from './request-admission.ts';
import { sendStatus } from './status.ts';
import { abortWithStream, upstreamUse } from './upstream-dispatch.ts';
import { kubeVerb } from './verb.ts';

/** Relays one plain request read from `ex`'s stream; resolves when its exchange is recorded. */
export async function relayRequest(req: IncomingMessage, res: ServerResponse, ex: Exchange, o: KubeProxyOptions): Promise<void> {
  const method = req.method ?? 'GET';
  const path = req.url ?? '';
  const info = requestInfo(method, path);
  const verb = kubeVerb(method, path, false, info);
  const result: ExchangeResult = { method, path, verb, status: undefined, bytesIn: 0, bytesOut: 0, upgraded: false, target: auditTarget(info) };
  res.shouldKeepAlive = false;
  res.sendDate = false;
  const answer = (refusal: Refusal): void => {
    req.resume();
    sendStatus(res, refusal.code, refusal.message, refusal.rule);
    refusedWith(result, refusal);
    res.once('finish', () => recordExchange(ex, result, o));
  };
  const upgrading = req.headers.upgrade !== undefined && /\bupgrade\b/i.test(req.headers.connection ?? '');
  const kind = { upgrade: false, protocolProblem: upgrading ? 'unsupported upgrade' : undefined, use: upstreamUse(verb, method, path) };
  const upstream = await admitRequest(req, info, ex, o, kind, result, answer);
  if (upstream === undefined) return;
  const { dispatcher, headers, credentials } = upstream;
  const chunked = req.headers['transfer-encoding'] !== undefined;
  const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || chunked;
  if (!hasBody) req.resume();
  const watching = verb === 'watch';
  if (watching) o.metrics.watchesActive.inc();
  const done = (error?: unknown): void => {
    delete ex.abort;
    if (watching) o.metrics.watchesActive.dec();
    if (error !== undefined) result.error = error;
    recordExchange(ex, result, o);
  };
  // Only a chunked body can carry trailers; undici never forwards them, and this makes a forged one a 403.
  const body = !hasBody ? null : chunked ? Readable.from(trailerCheckedBody(req), { objectMode: false }) : coalescedBody(req);
  await new Promise<void>((settle) => {
    dispatcher.dispatch({ path, method, headers, body }, {
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
        // phrase: Node's ServerResponse then chunks the body and uses the
        // standard phrase, as it does for an HTTP/1.1 chunked answer.
        const raw = relayResponseHeaders(headerList(controller.rawHeaders), { trailers: true });
        if (statusText !== undefined && statusText !== '') res.writeHead(statusCode, statusText, raw);
        else res.writeHead(statusCode, raw);
        // The head goes out now: a WATCH may not send its first event for minutes.
        res.flushHeaders();
      },
      onResponseData(controller, chunk) {
        result.bytesOut += chunk.length;
        writeWithBackpressure(res, chunk, controller);
      },
      onResponseEnd(controller) {
        const trailers = headerPairs(controller.rawTrailers);
        if (trailers.length > 0) res.addTrailers(trailers);
        res.end(() => {
          done();
          settle();
        });
      },
      onResponseError(_controller, err) {
        if (ex.gone) {
          done();
        } else if (err instanceof ImpersonationTrailerError && !res.headersSent) {
          answer({ code: 403, message: err.message, rule: 'impersonation' });
          done();
        } else {
          o.metrics.upstreamError(upstreamErrorReason(err));
          if (!res.headersSent) {
            sendStatus(res, 502, `API server request failed: ${err.message}`);
            result.status = 502;
          } else {
            // The head is out: the only honest signal left is a reset stream.
            ex.stream.destroy(err);
          }
          done(err);
        }
        settle();
      },
    });
  });
}
