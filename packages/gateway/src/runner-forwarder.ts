import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import {
  auditPath, auditTarget, DENIED_BY_HEADER, deniedByRule, findImpersonationHeader, kubeStatusJson, HeadTimeoutError, impersonationRefusal, relayErrorStatus, relayRequest, relayUpgrade, requestInfo, splice,
  type AuditDenyRule, type AuditSink, type RelayOptions, type RelayResult, type StreamPreamble,
} from '@pipeops/tunnel-protocol';
import { isLimited, type RunnerLimiter, type RunnerLimits, type RunnerSlot } from './runner-limits.ts';
import {
  forwardedHead, HeadError, headerValue, MAX_REQUEST_HEAD_BYTES, MAX_RESPONSE_HEAD_BYTES, parseRequestHead, readHead, runnerResponseHead, statusOf,
} from './runner-splice.ts';
import { refuseWithStatus, sendStatus } from './kube-status.ts';
import { statusClass, type GatewayMetrics } from './metrics.ts';

/** Header carrying the request id on the forwarded request and on the runner's response. */
export const REQUEST_ID_HEADER = 'x-pipeops-request-id';

/** Which runner route a request came in on (a log field; fixed set). */
export type RunnerRoute = 'k8s' | 'ws-runner' | 'ws-k8s';

/** Who asks for what: everything the forwarder needs besides the request itself. */
export interface RunnerRequestContext {
  /** The runner's id from the tokens file (the authenticated identity). */
  runnerId: string;
  cluster: string;
  /** Origin-form target relative to the API server root, query included (`/api/v1/pods?watch=1`). */
  path: string;
  route: RunnerRoute;
  requestId: string;
  /** The runner's limits (its tokens-file entry over the gateway's defaults). */
  limits: Readonly<RunnerLimits>;
}

/** A refused request's context: what is known when it is refused (before authentication: little). */
export type RefusalContext = Partial<RunnerRequestContext> & { requestId: string; route: RunnerRoute; rule?: AuditDenyRule };

/** What the forwarder needs from the gateway. */
export interface RunnerForwarderDeps {
  openStream: (cluster: string, preamble: Omit<StreamPreamble, 'v'>) => Promise<Duplex>;
  logger: Logger;
  metrics: GatewayMetrics;
  /** Time from opening the agent stream to the response head (ms); beyond it → 504 `Status`. */
  agentHeadTimeoutMs: number;
  /** A `/ws/runner` stream must deliver its request head within this (ms), or it is reset (and audited with the error `no request head in time`). */
  requestHeadTimeoutMs: number;
  /** Per-runner stream and rate limits. */
  limiter: RunnerLimiter;
  /** Where the one audit record per runner request goes. */
  audit: AuditSink;
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The runner's own `x-pipeops-request-id` when it is a sane token, else a fresh UUID. */
export function requestIdFor(req: IncomingMessage): string {
  return requestIdFrom(req.headers[REQUEST_ID_HEADER]);
}

/** `given` when it is a sane request id token, else a fresh UUID. */
export function requestIdFrom(given: string | string[] | undefined): string {
  return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
}

/**
 * Checks that a runner's request target is origin-form and the method is not
 * CONNECT: the gateway only ever relays paths relative to the cluster's API
 * server. Returns the refusal message, or undefined when fine.
 */
export function targetProblem(method: string | undefined, target: string): string | undefined {
  if (method === 'CONNECT') return 'CONNECT is not supported by the gateway';
  if (!target.startsWith('/') || target.startsWith('//')) return 'only origin-form request targets (/path?query) are accepted';
  return undefined;
}

/**
 * The one forwarding path of every runner route (`/k8s/clusters/{cluster}/…`
 * and the streams of `/ws/runner`): opens a `kind: 'http'` stream to the
 * cluster's agent, relays the request without the runner's `Authorization`,
 * with `x-pipeops-request-id` set both ways, answers the gateway's own
 * failures as Kubernetes `Status` JSON, and writes one log record and one
 * metric sample per request.
 */
export class RunnerForwarder {
  readonly #deps: RunnerForwarderDeps;

  constructor(deps: RunnerForwarderDeps) {
    this.#deps = deps;
  }

  /** Relays a plain request. Never throws. */
  request(req: IncomingMessage, res: ServerResponse, ctx: RunnerRequestContext): void {
    const slot = this.#admit(req, res, ctx, req.rawHeaders);
    if (slot === undefined) return;
    const started = performance.now();
    void relayRequest(req, res, this.#opener(ctx), this.#relayOptions(ctx)).then((r) => { slot.release(); this.#done(req, ctx, r, started); });
  }

  /** Relays an upgrade (exec, attach, port-forward). Never throws. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: RunnerRequestContext): void {
    const slot = this.#admit(req, socket, ctx, req.rawHeaders);
    if (slot === undefined) return;
    const started = performance.now();
    void relayUpgrade(req, socket, head, this.#opener(ctx), this.#relayOptions(ctx)).then((r) => { slot.release(); this.#done(req, ctx, r, started); });
  }

  /**
   * The gateway's checks of an authenticated runner's request: no
   * impersonation header (403), within the runner's stream and rate limits
   * (429 with Retry-After). Answers and returns undefined when refused.
   */
  #admit(req: { method?: string | undefined }, target: ServerResponse | Duplex, ctx: RunnerRequestContext, rawHeaders: readonly string[], drain = false): RunnerSlot | undefined {
    const forged = findImpersonationHeader(rawHeaders);
    if (forged !== undefined) {
      this.refuse(req, target, 403, impersonationRefusal(forged), { ...ctx, rule: 'impersonation' }, {}, drain);
      return undefined;
    }
    const slot = this.#deps.limiter.acquire(ctx.runnerId, ctx.limits);
    if (isLimited(slot)) {
      this.#deps.metrics.runnerLimited.inc({ runner: ctx.runnerId, limit: slot.limited });
      this.refuse(req, target, 429, slot.message, { ...ctx, rule: slot.limited }, { 'retry-after': String(slot.retryAfterSeconds) }, drain);
      return undefined;
    }
    return slot;
  }

  /**
   * Relays one `/ws/runner` stream (one request): reads the request head,
   * opens the agent stream, and from then on splices bytes both ways, reading
   * only the response head on the way (for the request id, the log record
   * and the metric). Never throws.
   */
  stream(runner: Duplex, who: Pick<RunnerRequestContext, 'runnerId' | 'cluster' | 'limits'>): void {
    const started = performance.now();
    void this.#splice(runner, who).then(
      ({ method, ctx, result }) => { if (ctx !== undefined) this.#log({ method }, ctx, result, performance.now() - started, result.error?.message); },
      () => runner.destroy(),
    );
  }

  async #splice(runner: Duplex, who: Pick<RunnerRequestContext, 'runnerId' | 'cluster' | 'limits'>): Promise<{ method: string | undefined; ctx: RunnerRequestContext | undefined; result: RelayResult }> {
    const result: RelayResult = { status: 0, bytesIn: 0, bytesOut: 0, upgraded: false };
    const fallbackCtx = (): RunnerRequestContext => ({ ...who, path: '', route: 'ws-runner', requestId: randomUUID() });
    const refuse = (ctx: RunnerRequestContext, status: number, message: string, method?: string) => {
      refuseWithStatus(runner, status, message, { [REQUEST_ID_HEADER]: ctx.requestId }, { drain: true });
      return { method, ctx, result: { ...result, status, error: new Error(message) } };
    };
    let request: { head: string; rest: Buffer };
    // A stream that never sends its head would hold a mux stream and a closure forever.
    const headTimer = setTimeout(() => runner.destroy(new HeadTimeoutError(this.#deps.requestHeadTimeoutMs)), this.#deps.requestHeadTimeoutMs);
    try {
      request = await readHead(runner, MAX_REQUEST_HEAD_BYTES);
    } catch (err) {
      if (err instanceof HeadError && err.why === 'too-large') return refuse(fallbackCtx(), 400, 'request head too large');
      runner.destroy();
      // The runner went away before asking anything, or sent no head in time (logged: it held a stream open).
      if (err instanceof HeadTimeoutError) return { method: undefined, ctx: fallbackCtx(), result: { ...result, error: new Error('no request head in time') } };
      return { method: undefined, ctx: undefined, result };
    } finally {
      clearTimeout(headTimer);
    }
    const head = parseRequestHead(request.head);
    if (head === undefined) return refuse(fallbackCtx(), 400, 'malformed HTTP request');
    const given = head.headers.find(([n]) => n.toLowerCase() === REQUEST_ID_HEADER)?.[1];
    const ctx: RunnerRequestContext = { ...who, path: head.target, route: 'ws-runner', requestId: requestIdFrom(given) };
    const problem = targetProblem(head.method, head.target);
    if (problem !== undefined) return refuse(ctx, 400, problem, head.method);
    const slot = this.#admit(head, runner, ctx, head.headers.flat(), true);
    if (slot === undefined) return { method: head.method, ctx: undefined, result };
    runner.once('close', () => slot.release());
    const gone = new Promise<'gone'>((resolve) => runner.once('close', () => resolve('gone')));
    const opening = this.#opener(ctx)();
    let agent: Duplex;
    try {
      const first = await Promise.race([opening, gone]);
      if (first === 'gone') {
        opening.then((s) => s.destroy(), () => {});
        return { method: head.method, ctx, result: { ...result, status: 499 } };
      }
      agent = first;
    } catch (err) {
      const e = relayErrorStatus(err as Error);
      return refuse(ctx, e.status, e.message, head.method);
    }
    agent.write(forwardedHead(head, REQUEST_ID_HEADER, ctx.requestId));
    if (request.rest.length > 0) { result.bytesIn += request.rest.length; agent.write(request.rest); }
    // The runner's FIN passes on as a half-close before the response head (a client that half-closes after
    // its request), on an upgraded stream (exec's stdin EOF) and after the response ended. While a response
    // is streaming (a WATCH, logs -f) it means the runner gave up, as Node's HTTP server treats it: reset both.
    let streaming = false;
    splice(runner, agent, (n) => { result.bytesIn += n; }, (err) => { result.error ??= err; }, () => {
      if (!streaming || result.upgraded || agent.readableEnded) agent.end();
      else { result.error ??= new Error('the runner closed its stream while the response was streaming'); agent.destroy(); runner.destroy(); }
    });
    runner.resume();
    let response = await this.#responseHead(agent);
    // Interim responses (100 Continue, 103 Early Hints) pass through as they are; the final head gets the request id.
    while (!('error' in response) && response.status >= 100 && response.status < 200 && response.status !== 101) {
      runner.write(Buffer.from(`${response.head}\r\n\r\n`, 'latin1'));
      response = await this.#responseHead(agent, response.rest);
    }
    if ('error' in response) {
      agent.destroy();
      if (response.error instanceof HeadError && response.error.why === 'closed' && runner.destroyed) return { method: head.method, ctx, result: { ...result, status: 499 } };
      const e = relayErrorStatus(response.error);
      return refuse(ctx, e.status, e.message, head.method);
    }
    result.status = response.status;
    result.upgraded = response.status === 101;
    // The agent's own refusals are 4xx: only those heads are searched for its deny rule.
    const deniedBy = response.status >= 400 && response.status < 500 ? deniedByRule(headerValue(response.head, DENIED_BY_HEADER)) : undefined;
    if (deniedBy !== undefined) result.deniedBy = deniedBy;
    streaming = true;
    runner.write(runnerResponseHead(response.head, REQUEST_ID_HEADER, ctx.requestId));
    if (response.rest.length > 0) { result.bytesOut += response.rest.length; runner.write(response.rest); }
    splice(agent, runner, (n) => { result.bytesOut += n; }, (err) => { result.error ??= err; });
    agent.resume();
    await Promise.all([closed(runner), closed(agent)]);
    return { method: head.method, ctx, result };
  }

  /** The agent's next response head (after `initial`, bytes already read), bounded by the agent head timeout. */
  async #responseHead(agent: Duplex, initial?: Buffer): Promise<{ status: number; head: string; rest: Buffer } | { error: Error }> {
    const timeoutMs = this.#deps.agentHeadTimeoutMs;
    const timer = timeoutMs > 0 ? setTimeout(() => agent.destroy(new HeadTimeoutError(timeoutMs)), timeoutMs) : undefined;
    try {
      const { head, rest } = await readHead(agent, MAX_RESPONSE_HEAD_BYTES, initial);
      const status = statusOf(head);
      if (status === undefined) return { error: new Error('the agent sent a malformed response head') };
      return { status, head, rest };
    } catch (err) {
      return { error: err instanceof HeadError && err.why === 'too-large' ? new Error('the agent sent a response head that is too large') : err as Error };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  /** Refuses a request with a `Status` (401, 403, 429, 400…), audited as denied (by `ctx.rule`, when given) and counted. */
  refuse(req: { method?: string | undefined }, target: ServerResponse | Duplex, status: number, message: string, ctx: RefusalContext, extraHeaders: Record<string, string> = {}, drain = false): void {
    const headers = { ...extraHeaders, [REQUEST_ID_HEADER]: ctx.requestId };
    if (isResponse(target)) sendStatus(target, status, message, headers);
    else refuseWithStatus(target, status, message, headers, { drain });
    this.#log(req, ctx, { status, bytesIn: 0, bytesOut: 0, upgraded: false }, 0, message);
  }

  #opener(ctx: RunnerRequestContext): () => Promise<Duplex> {
    // The runner's groups are filled in by the gateway from its tokens (see Gateway.openStream).
    return () => this.#deps.openStream(ctx.cluster, { kind: 'http', requestId: ctx.requestId, runnerId: ctx.runnerId, cluster: ctx.cluster });
  }

  #relayOptions(ctx: RunnerRequestContext): RelayOptions {
    return {
      path: ctx.path,
      dropHeaders: ['authorization'],
      setHeaders: { [REQUEST_ID_HEADER]: ctx.requestId },
      responseHeaders: { [REQUEST_ID_HEADER]: ctx.requestId },
      headTimeoutMs: this.#deps.agentHeadTimeoutMs,
      errorResponse: (status, reason, message) => ({ contentType: 'application/json', body: kubeStatusJson(status, message, reason) }),
    };
  }

  #done(req: IncomingMessage, ctx: RunnerRequestContext, r: RelayResult, started: number): void {
    this.#log(req, ctx, r, performance.now() - started, r.error?.message);
  }

  #log(req: { method?: string | undefined }, ctx: RefusalContext, r: RelayResult, ms: number, error: string | undefined): void {
    this.#deps.metrics.runnerRequests.inc({ code: statusClass(r.status) });
    if (ctx.runnerId !== undefined) {
      if (r.bytesIn > 0) this.#deps.metrics.runnerBytes.inc({ runner: ctx.runnerId, direction: 'in' }, r.bytesIn);
      if (r.bytesOut > 0) this.#deps.metrics.runnerBytes.inc({ runner: ctx.runnerId, direction: 'out' }, r.bytesOut);
    }
    // Never headers, never the query (it is the runner's business), never a token.
    const method = req.method ?? '';
    const path = ctx.path ?? '';
    // Refused here (ctx.rule), or by the agent itself (its x-pipeops-denied-by answer header).
    const rule = ctx.rule ?? r.deniedBy;
    this.#deps.audit.write({
      event: 'audit', side: 'gateway', time: new Date(Date.now() - ms).toISOString(), requestId: ctx.requestId,
      runnerId: ctx.runnerId ?? null, cluster: ctx.cluster ?? null, route: ctx.route,
      method, path: auditPath(path), ...auditTarget(requestInfo(method, path)),
      status: r.status, bytesIn: r.bytesIn, bytesOut: r.bytesOut, ms: Math.round(ms * 10) / 10, upgraded: r.upgraded,
      decision: rule === undefined ? 'allowed' : 'denied',
      ...(rule !== undefined ? { rule } : {}),
      ...(error !== undefined ? { error } : {}),
    }, r.status >= 500 && r.status !== 503 ? 'warn' : 'info');
  }
}

/** Resolves when `s` has closed. */
function closed(s: Duplex): Promise<void> {
  return s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

function isResponse(target: ServerResponse | Duplex): target is ServerResponse {
  return typeof (target as ServerResponse).writeHead === 'function';
}

