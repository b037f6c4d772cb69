import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { relayRequest, relayUpgrade, type RelayOptions, type RelayResult, type StreamPreamble } from '@pipeops/tunnel-protocol';
import { refuseWithStatus, sendStatus, statusJson } from './kube-status.ts';
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
}

/** What the forwarder needs from the gateway. */
export interface RunnerForwarderDeps {
  openStream: (cluster: string, preamble: Omit<StreamPreamble, 'v'>) => Promise<Duplex>;
  logger: Logger;
  metrics: GatewayMetrics;
  /** Time from opening the agent stream to the response head (ms); beyond it → 504 `Status`. */
  agentHeadTimeoutMs: number;
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The runner's own `x-pipeops-request-id` when it is a sane token, else a fresh UUID. */
export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
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
    const started = performance.now();
    void relayRequest(req, res, this.#opener(ctx), this.#relayOptions(ctx)).then((r) => this.#done(req, ctx, r, started));
  }

  /** Relays an upgrade (exec, attach, port-forward). Never throws. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: RunnerRequestContext): void {
    const started = performance.now();
    void relayUpgrade(req, socket, head, this.#opener(ctx), this.#relayOptions(ctx)).then((r) => this.#done(req, ctx, r, started));
  }

  /** Refuses a request with a `Status` (401, 403, 400…), logged and counted like a relayed one. */
  refuse(req: IncomingMessage, target: ServerResponse | Duplex, status: number, message: string, ctx: Partial<RunnerRequestContext> & { requestId: string; route: RunnerRoute }): void {
    const headers = { [REQUEST_ID_HEADER]: ctx.requestId };
    if (isResponse(target)) sendStatus(target, status, message, headers);
    else refuseWithStatus(target, status, message, headers);
    this.#log(req, ctx, { status, bytesIn: 0, bytesOut: 0, upgraded: false }, 0, message);
  }

  #opener(ctx: RunnerRequestContext): () => Promise<Duplex> {
    return () => this.#deps.openStream(ctx.cluster, { kind: 'http', requestId: ctx.requestId, runnerId: ctx.runnerId, cluster: ctx.cluster });
  }

  #relayOptions(ctx: RunnerRequestContext): RelayOptions {
    return {
      path: ctx.path,
      dropHeaders: ['authorization'],
      setHeaders: { [REQUEST_ID_HEADER]: ctx.requestId },
      responseHeaders: { [REQUEST_ID_HEADER]: ctx.requestId },
      headTimeoutMs: this.#deps.agentHeadTimeoutMs,
      errorResponse: (status, reason, message) => ({ contentType: 'application/json', body: statusJson(status, reason, message) }),
    };
  }

  #done(req: IncomingMessage, ctx: RunnerRequestContext, r: RelayResult, started: number): void {
    this.#log(req, ctx, r, performance.now() - started, r.error?.message);
  }

  #log(req: IncomingMessage, ctx: Partial<RunnerRequestContext> & { requestId: string; route: RunnerRoute }, r: RelayResult, ms: number, error: string | undefined): void {
    this.#deps.metrics.runnerRequests.inc({ code: statusClass(r.status) });
    // Never headers, never the query (it is the runner's business), never a token.
    const rec: Record<string, unknown> = {
      event: 'runner_request', route: ctx.route, requestId: ctx.requestId, runnerId: ctx.runnerId, cluster: ctx.cluster,
      method: req.method, path: pathOnly(ctx.path ?? ''), status: r.status, bytesIn: r.bytesIn, bytesOut: r.bytesOut,
      ms: Math.round(ms * 10) / 10, upgraded: r.upgraded,
    };
    if (error !== undefined) rec.error = error;
    if (r.status >= 500 && r.status !== 503) this.#deps.logger.warn(rec, 'runner request');
    else this.#deps.logger.info(rec, 'runner request');
  }
}

function isResponse(target: ServerResponse | Duplex): target is ServerResponse {
  return typeof (target as ServerResponse).writeHead === 'function';
}

function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}
