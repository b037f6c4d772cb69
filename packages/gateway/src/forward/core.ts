// The gateway's one forwarding core. Every runner route — `/k8s/clusters/…`
// (k8s-route.ts), the streams of `/ws/runner` (ws-runner-route.ts) and the
// requests of `/ws/k8s` (ws-k8s-route.ts) — is a front-end that speaks its
// own framing to the runner and leaves the rest to this: the gateway's own
// refusals (impersonation, limits), opening the agent stream raced against
// the runner going away, the response-head deadline, every error answered
// as a Kubernetes `Status`, and one audit record and one set of metrics per
// request.
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  afterOutput,
  auditRecord,
  findImpersonationHeader,
  impersonationRefusal,
  openExchange,
  relayErrorStatus,
  requestInfo,
  type AuditDenyRule,
  type AuditSink,
  type RelayResult,
  type StreamPreamble,
} from '@pipeops/tunnel-protocol';
import { refuseWithStatus, sendStatus } from '../kube-status.ts';
import { statusClass, type GatewayMetrics } from '../metrics.ts';
import { isLimited, type RunnerLimiter, type RunnerLimits, type RunnerSlot } from '../runner-limits.ts';
import { REQUEST_ID_HEADER } from './request-id.ts';

/** Which runner route a request came in on (a log field; fixed set). */
export type RunnerRoute = 'k8s' | 'ws-runner' | 'ws-k8s';

/** Who asks for what: everything the core needs besides the request itself. */
export interface ForwardContext {
  /** The runner's id from the tokens file (the authenticated identity). */
  runnerId: string;
  cluster: string;
  /** Origin-form target relative to the API server root, query included (`/api/v1/pods?watch=1`). */
  path: string;
  route: RunnerRoute;
  requestId: string;
  /** The runner's limits (its tokens-file entry over the gateway's defaults); undefined where none apply. */
  limits: Readonly<RunnerLimits> | undefined;
}

/** A refused request's context: what is known when it is refused (before authentication: little). */
export type RefusalContext = Partial<ForwardContext> & { requestId: string; route: RunnerRoute; rule?: AuditDenyRule };

/** The gateway's own answer instead of the agent's: a `Status` with this code and message, audited as denied by `rule` when given. */
export interface Refusal {
  status: number;
  message: string;
  rule?: AuditDenyRule;
  /** Headers the answer carries besides the request id (`Retry-After` for a 429). */
  headers: Record<string, string>;
}

/** The preamble of every agent stream the core opens. */
export type ForwardPreamble = Pick<StreamPreamble, 'kind' | 'requestId' | 'runnerId' | 'cluster'> & { kind: 'http'; runnerId: string; cluster: string };

/** What the core needs from the gateway. */
export interface ForwardCoreDeps {
  /** Opens a data stream to the cluster's agent, preamble written; rejects with a `status` (503 not connected…). */
  openStream: (cluster: string, preamble: ForwardPreamble) => Promise<Duplex>;
  /** Time from opening the agent stream to the response head (ms); beyond it → 504 `Status`. */
  agentHeadTimeoutMs: number;
  /** Where the one audit record per runner request goes. */
  audit: AuditSink;
  /** The gateway's metrics; absent → none are counted. */
  metrics?: GatewayMetrics | undefined;
  /** Per-runner stream and rate limits; absent → none apply. */
  limiter?: RunnerLimiter | undefined;
}

/** The agent side of one exchange, see {@link ForwardCore.begin}. */
export interface AgentExchange {
  /** The agent stream; rejects with the abort reason when `signal` aborts first, or the opener's error. */
  readonly agent: Promise<Duplex>;
  /** Aborted when the runner goes away (the caller's signal) or the head deadline passes (a `HeadTimeoutError`). */
  readonly signal: AbortSignal;
  /** Disarms the head deadline: the response head arrived, or the exchange ended first. Idempotent. */
  disarm(): void;
}

/**
 * The forwarding core shared by the runner routes (see the file comment).
 * Never throws; everything it answers is a Kubernetes `Status`.
 */
export class ForwardCore {
  readonly #deps: ForwardCoreDeps;

  constructor(deps: ForwardCoreDeps) {
    this.#deps = deps;
  }

  /** Time from opening the agent stream to the response head (ms). */
  get headTimeoutMs(): number {
    return this.#deps.agentHeadTimeoutMs;
  }

  /**
   * The gateway's checks of an authenticated runner's request, given its raw
   * headers (`[name, value, …]`): no impersonation header (403), within the
   * runner's stream and rate limits (429 with `Retry-After`). The slot is
   * released by the caller when the exchange is over.
   */
  admit(ctx: ForwardContext, rawHeaders: readonly string[]): { slot: RunnerSlot } | { refusal: Refusal } {
    const forged = findImpersonationHeader(rawHeaders);
    if (forged !== undefined) return { refusal: { status: 403, message: impersonationRefusal(forged), rule: 'impersonation', headers: {} } };
    const { limiter } = this.#deps;
    if (limiter === undefined || ctx.limits === undefined) return { slot: { release() {} } };
    const slot = limiter.acquire(ctx.runnerId, ctx.limits);
    if (!isLimited(slot)) return { slot };
    this.#deps.metrics?.runnerLimited.inc({ runner: ctx.runnerId, limit: slot.limited });
    return { refusal: { status: 429, message: slot.message, rule: slot.limited, headers: { 'retry-after': String(slot.retryAfterSeconds) } } };
  }

  /** Opens the `kind: 'http'` agent stream of `ctx` (the runner's groups are filled in by the gateway from its tokens, see Gateway.openStream). */
  openAgent(ctx: ForwardContext): Promise<Duplex> {
    return this.#deps.openStream(ctx.cluster, { kind: 'http', requestId: ctx.requestId, runnerId: ctx.runnerId, cluster: ctx.cluster });
  }

  /**
   * Starts the agent side of one exchange: arms the head deadline and opens
   * the agent stream, raced against `gone` (the runner went away, or
   * cancelled): a stream that arrives too late is destroyed.
   */
  begin(ctx: ForwardContext, gone: AbortSignal): AgentExchange {
    const { stream: agent, signal, disarm } = openExchange(() => this.openAgent(ctx), gone, this.#deps.agentHeadTimeoutMs);
    agent.catch(() => disarm());
    return { agent, signal, disarm };
  }

  /** The gateway's answer to an error before the response head (see relayErrorStatus: 503 with `Retry-After`, 504, 429, else 502). */
  failure(err: Error): Refusal {
    const { status, message, headers } = relayErrorStatus(err);
    return { status, message, headers };
  }

  /**
   * Answers `refusal` on `target` — a response, or a raw connection (an
   * upgrade, a mux stream: `drain` keeps reading it, see refuseWithStatus) —
   * with the request id; the caller records it.
   */
  answer(target: ServerResponse | Duplex, refusal: Refusal, requestId: string, drain = false): void {
    const headers = { ...refusal.headers, [REQUEST_ID_HEADER]: requestId };
    if (isResponse(target)) sendStatus(target, refusal.status, refusal.message, headers);
    else refuseWithStatus(target, refusal.status, refusal.message, headers, { drain });
  }

  /** {@link answer}, and the record of the refused request: denied when the refusal (or `ctx`) names a rule. */
  refuse(method: string | undefined, target: ServerResponse | Duplex, refusal: Refusal, ctx: RefusalContext, drain = false): void {
    this.answer(target, refusal, ctx.requestId, drain);
    this.record(method, withRule(ctx, refusal), { status: refusal.status, bytesIn: 0, bytesOut: 0, upgraded: false, error: new Error(refusal.message) }, 0);
  }

  /**
   * The one record of a runner request: its audit record (never a header, a
   * query or a token), the request counter by status class and the runner's
   * byte counters. Denied when refused here (`ctx.rule`) or by the agent
   * itself (its `x-pipeops-denied-by` answer, `r.deniedBy`). Written
   * after this turn's output (see afterOutput).
   */
  record(method: string | undefined, ctx: RefusalContext, r: RelayResult, ms: number, extra: { outcome?: string } = {}): void {
    const ended = Date.now();
    afterOutput(() => this.#writeRecord(method, ctx, r, ms, extra, ended));
  }

  #writeRecord(method: string | undefined, ctx: RefusalContext, r: RelayResult, ms: number, extra: { outcome?: string }, ended: number): void {
    const { metrics } = this.#deps;
    if (metrics !== undefined) {
      const code = statusClass(r.status);
      metrics.runnerRequests.add(code, { code });
      const runner = ctx.runnerId;
      if (runner !== undefined) {
        if (r.bytesIn > 0) metrics.runnerBytes.add(`${runner} in`, { runner, direction: 'in' }, r.bytesIn);
        if (r.bytesOut > 0) metrics.runnerBytes.add(`${runner} out`, { runner, direction: 'out' }, r.bytesOut);
      }
    }
    const m = method ?? '';
    const path = ctx.path ?? '';
    const rule = ctx.rule ?? r.deniedBy;
    this.#deps.audit.write(
      auditRecord({
        side: 'gateway',
        time: new Date(ended - ms).toISOString(),
        requestId: ctx.requestId,
        runnerId: ctx.runnerId ?? null,
        cluster: ctx.cluster ?? null,
        route: ctx.route,
        method: m,
        target: path,
        info: requestInfo(m, path),
        status: r.status === 0 ? null : r.status,
        bytesIn: r.bytesIn,
        bytesOut: r.bytesOut,
        ms: Math.round(ms * 10) / 10,
        upgraded: r.upgraded,
        rule,
        error: r.error?.message,
        outcome: extra.outcome,
      }),
      r.status >= 500 && r.status !== 503 ? 'warn' : 'info',
    );
  }
}

function isResponse(target: ServerResponse | Duplex): target is ServerResponse {
  return typeof (target as ServerResponse).writeHead === 'function';
}

/** `ctx` with the refusal's rule, when it names one. */
export function withRule<C extends RefusalContext>(ctx: C, refusal: Refusal): C {
  return refusal.rule === undefined ? ctx : { ...ctx, rule: refusal.rule };
}
