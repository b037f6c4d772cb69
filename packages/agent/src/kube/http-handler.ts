import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Readable, type Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { auditPath, auditTarget, NO_AUDIT_TARGET, requestInfo, serveHttpOverStream } from '@pipeops/tunnel-protocol';
import type { AuditDenyRule, AuditSink, AuditTarget, StreamPreamble } from '@pipeops/tunnel-protocol';
import type { StreamHandler } from '../streams.ts';
import { admit, ImpersonationTrailerError, trailerCheckedBody, type AdmissionOptions } from './admission.ts';
import type { KubeCredentials } from './credentials.ts';
import { downstreamResponseHeaders, targetProblem, trailerPairs, upstreamRequestHeaders } from './headers.ts';
import type { KubeMetrics } from './kube-metrics.ts';
import { upstreamErrorReason } from './kube-metrics.ts';
import { sendRawStatus, sendStatus } from './status.ts';
import type { KubeUpstream, UpstreamUse } from './upstream.ts';
import { relayUpgrade } from './upgrade-relay.ts';
import { kubeVerb } from './verb.ts';
import type { KubeVerb } from './verb.ts';

/** Options of {@link createKubeProxy}. */
export interface KubeProxyOptions {
  /** The agent's API-server access, or the reason there is none (every request is then answered 503). */
  access: { credentials: KubeCredentials; upstream: KubeUpstream } | { unavailable: string };
  metrics: KubeMetrics;
  /** Who the agent acts as, and the cluster owner's policy (see admission.ts). */
  admission: AdmissionOptions;
  /** Where the one audit record per request goes. */
  audit: AuditSink;
  /** Max bytes of a request head. Default `32_768`. */
  maxHeaderBytes?: number;
  /** After the agent's response ended, how long the far side may keep its half of the stream open before it is reset, ms. Default `30_000`. */
  lingerMs?: number;
}

/** The `http` stream kind: one HTTP/1.1 request per stream, replayed to the API server. */
export interface KubeProxy {
  handler: StreamHandler;
}

/** What one stream's request needs besides the request itself. */
export interface Exchange {
  stream: Duplex;
  preamble: StreamPreamble;
  logger: Logger;
  started: number;
  /** When the stream arrived (ISO 8601), for the audit record. */
  time: string;
  /** Requests seen on this stream: one is allowed (see `createKubeProxy`). */
  requests: number;
  /** Set once the exchange is recorded (log line + metrics). */
  recorded: boolean;
  /** Set when the stream closed before the exchange finished (the runner went away). */
  gone: boolean;
  /** Set once a 101 turned the stream into a raw pipe (a half-open stream may then last as long as the session). */
  upgraded: boolean;
  /** Aborts the upstream request in flight, if any. */
  abort?: (reason: Error) => void;
}

/** Figures of one finished exchange. */
export interface ExchangeResult {
  method: string;
  path: string;
  verb: ReturnType<typeof kubeVerb>;
  status: number | undefined;
  bytesIn: number;
  bytesOut: number;
  upgraded: boolean;
  error?: unknown;
  /** The request-info fields (verb, group, resource, …) once the request was read. */
  target?: AuditTarget;
  /** Set when the agent refused the request (impersonation, the owner's policy, identity). */
  rule?: AuditDenyRule;
}

/** Writes the exchange's one audit record and its metrics (once). */
export function recordExchange(ex: Exchange, r: ExchangeResult, o: Pick<KubeProxyOptions, 'metrics' | 'audit'>): void {
  if (ex.recorded) return;
  ex.recorded = true;
  const ms = performance.now() - ex.started;
  o.metrics.observe(r.verb, r.status, ms / 1000);
  if (r.rule !== undefined) o.metrics.denied(r.rule);
  const p = ex.preamble;
  o.audit.write({
    event: 'audit', side: 'agent', time: ex.time, requestId: p.requestId, runnerId: p.runnerId ?? null, cluster: p.cluster ?? null,
    method: r.method, path: auditPath(r.path), ...(r.target ?? NO_AUDIT_TARGET),
    status: r.status ?? null, bytesIn: r.bytesIn, bytesOut: r.bytesOut, ms: Math.round(ms), upgraded: r.upgraded,
    decision: r.rule === undefined ? 'allowed' : 'denied',
    ...(r.rule !== undefined ? { rule: r.rule } : {}),
    ...(r.error !== undefined ? { error: (r.error as Error).message ?? String(r.error) } : {}),
  }, r.status !== undefined && r.status >= 500 ? 'warn' : 'info');
}

/** Where a request goes upstream, or why it cannot: the Status to answer with. */
export type UpstreamTarget =
  | { dispatcher: Dispatcher; headers: string[]; credentials: KubeCredentials }
  | { refusal: { code: number; message: string; error?: unknown } };

/**
 * Resolves the agent's credentials for one request: the client's headers with
 * the credentials swapped in, the dispatcher to the API server (the pool for
 * `use`), and the credentials themselves (invalidated on a 401). Refuses with
 * 503 when the agent has no API access, 502 when the credentials cannot be
 * obtained (counted as a `credentials` upstream error).
 */
export async function upstreamTarget(rawHeaders: readonly string[], added: readonly string[], o: KubeProxyOptions, use: UpstreamUse = 'request'): Promise<UpstreamTarget> {
  if ('unavailable' in o.access) return { refusal: { code: 503, message: `the agent has no Kubernetes API access: ${o.access.unavailable}` } };
  const { credentials, upstream } = o.access;
  try {
    const resolved = await credentials.resolve();
    return { headers: upstreamRequestHeaders(rawHeaders, resolved.headers, added), dispatcher: upstream.dispatcher(resolved.tls, use), credentials };
  } catch (err) {
    o.metrics.upstreamError('credentials');
    return { refusal: { code: 502, message: `cannot obtain API-server credentials: ${(err as Error).message}`, error: err } };
  }
}

/**
 * Builds the `http` stream handler. Each stream is handed to one private
 * `http.Server` (never listening) as a connection, so Node's own parser reads
 * the request; the handler validates the target, swaps in the agent's
 * credentials, replays it with undici and streams the answer back.
 */
export function createKubeProxy(o: KubeProxyOptions): KubeProxy {
  const exchanges = new WeakMap<Duplex, Exchange>();
  const server: Server = createServer({
    maxHeaderSize: o.maxHeaderBytes ?? 32_768,
    requireHostHeader: false,   // the Host check is ours, answered with a Status object
    requestTimeout: 0,          // uploads and watches are as long as they are; the gateway bounds them
    headersTimeout: 0,
    keepAlive: false,
  });
  // FIN after the request is a half-close, not a cancellation (RST is).
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  // One stream carries exactly one request: the gateway authorises, polices
  // and audits the first head only, so a second request pipelined behind it
  // would reach the API server unseen. Node's parser keeps reading a
  // connection, so the second head resets the stream instead.
  const secondRequest = (ex: Exchange, req: IncomingMessage): void => {
    ex.logger.warn({ event: 'pipelined_request_refused', requestId: ex.preamble.requestId, method: req.method }, 'a second request on one stream; stream reset');
    ex.abort?.(new Error('a second request was pipelined on the stream'));
    ex.stream.destroy();
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const ex = exchanges.get(req.socket);
    if (ex === undefined) {
      res.destroy();
      return;
    }
    if (++ex.requests > 1) { secondRequest(ex, req); return; }
    void relayRequest(req, res, ex, o).catch((err: unknown) => {
      ex.logger.error({ err }, 'kube request failed unexpectedly');
      if (!res.headersSent) sendStatus(res, 502, 'agent error');
      else ex.stream.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.pause();
    const ex = exchanges.get(socket);
    if (ex === undefined) {
      socket.destroy();
      return;
    }
    if (++ex.requests > 1) { secondRequest(ex, req); return; }
    void relayUpgrade(req, socket, head, ex, o).catch((err: unknown) => {
      ex.logger.error({ err }, 'kube upgrade failed unexpectedly');
      socket.destroy();
    });
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const ex = exchanges.get(socket);
    sendRawStatus(socket, 400, 'CONNECT is not allowed');
    if (ex !== undefined) {
      recordExchange(ex, { method: 'CONNECT', path: req.url ?? '', verb: 'other', status: 400, bytesIn: 0, bytesOut: 0, upgraded: false, rule: 'protocol' }, o);
    }
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    // A reset stream surfaces here too: that is a cancellation, handled on 'close'.
    if (typeof err.code !== 'string' || !err.code.startsWith('HPE_')) {
      socket.destroy();
      return;
    }
    const ex = exchanges.get(socket);
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    sendRawStatus(socket, 400, tooLarge ? 'request head too large' : 'malformed HTTP request');
    if (ex !== undefined) {
      recordExchange(ex, { method: '', path: '', verb: 'other', status: 400, bytesIn: 0, bytesOut: 0, upgraded: false, error: err, rule: 'protocol' }, o);
    }
  });

  const handler: StreamHandler = (stream, preamble, ctx) => new Promise<void>((resolve, reject) => {
    const ex: Exchange = {
      stream, preamble, logger: ctx.logger, started: performance.now(), time: new Date().toISOString(), requests: 0, recorded: false, gone: false, upgraded: false,
    };
    exchanges.set(stream, ex);
    let linger: NodeJS.Timeout | undefined;
    const onFinishWrite = (): void => {
      // After a plain response the far side should end its half now; if it never does, reset.
      if (ex.upgraded) return;
      linger = setTimeout(() => stream.destroy(), o.lingerMs ?? 30_000);
      linger.unref();
    };
    stream.once('finish', onFinishWrite);
    stream.once('close', () => {
      if (linger !== undefined) clearTimeout(linger);
      if (!ex.recorded) ex.gone = true;
      ex.abort?.(new Error('the stream closed before the response was complete'));
      const err = stream.errored;
      if (err !== null && err !== undefined) reject(err);
      else resolve();
    });
    serveHttpOverStream(server, stream);
  });
  return { handler };
}

/**
 * Which pool a request goes through: long-lived streaming reads — a WATCH, or
 * a followed log (`GET …/pods/NAME/log?follow=true`) — go where HTTP/2 may
 * carry many of them on one connection; everything else stays HTTP/1.1.
 */
export function upstreamUse(verb: KubeVerb, method: string, target: string): UpstreamUse {
  if (verb === 'watch') return 'stream';
  if (method !== 'GET') return 'request';
  const q = target.indexOf('?');
  if (q === -1 || !target.slice(0, q).endsWith('/log')) return 'request';
  const follow = new URLSearchParams(target.slice(q + 1)).get('follow');
  return follow === 'true' || follow === '1' ? 'stream' : 'request';
}

async function relayRequest(req: IncomingMessage, res: ServerResponse, ex: Exchange, o: KubeProxyOptions): Promise<void> {
  const method = req.method ?? 'GET';
  const path = req.url ?? '';
  const info = requestInfo(method, path);
  const verb = kubeVerb(method, path, false, info);
  const result: ExchangeResult = { method, path, verb, status: undefined, bytesIn: 0, bytesOut: 0, upgraded: false };
  res.shouldKeepAlive = false;
  res.sendDate = false;
  const answer = (code: number, message: string, error?: unknown, rule?: AuditDenyRule): void => {
    req.resume();
    sendStatus(res, code, message, rule);
    result.status = code;
    if (error !== undefined) result.error = error;
    if (rule !== undefined) result.rule = rule;
    res.once('finish', () => recordExchange(ex, result, o));
  };
  const problem = targetProblem(path, req.rawHeaders);
  if (problem !== undefined) return answer(400, problem, undefined, 'protocol');
  if (req.headers.upgrade !== undefined && /\bupgrade\b/i.test(req.headers.connection ?? '')) return answer(400, 'unsupported upgrade', undefined, 'protocol');
  result.target = auditTarget(info);
  const admitted = admit(info, req.rawHeaders, ex.preamble, false, o.admission);
  if ('refusal' in admitted) return answer(admitted.refusal.code, admitted.refusal.message, undefined, admitted.refusal.rule);
  const target = await upstreamTarget(req.rawHeaders, admitted.headers, o, upstreamUse(verb, method, path));
  if ('refusal' in target) return answer(target.refusal.code, target.refusal.message, target.refusal.error);
  const { dispatcher, headers, credentials } = target;
  if (ex.gone) {
    recordExchange(ex, result, o);
    return;
  }
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
  const body = !hasBody ? null : chunked ? Readable.from(trailerCheckedBody(req), { objectMode: false }) : req;
  await new Promise<void>((settle) => {
    dispatcher.dispatch({ path, method, headers, body }, {
      onRequestStart(controller) {
        ex.abort = (reason) => controller.abort(reason);
        if (ex.gone) controller.abort(new Error('the stream closed'));
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
        const raw = downstreamResponseHeaders(controller.rawHeaders ?? []);
        if (statusText !== undefined && statusText !== '') res.writeHead(statusCode, statusText, raw);
        else res.writeHead(statusCode, raw);
        // The head goes out now: a WATCH may not send its first event for minutes.
        res.flushHeaders();
      },
      onResponseData(controller, chunk) {
        result.bytesOut += chunk.length;
        if (!res.write(chunk)) {
          controller.pause();
          res.once('drain', () => controller.resume());
        }
      },
      onResponseEnd(controller) {
        const trailers = trailerPairs(controller.rawTrailers);
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
          answer(403, err.message, undefined, 'impersonation');
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
