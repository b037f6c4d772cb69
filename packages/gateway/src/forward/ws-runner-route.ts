// The `/ws/runner` front-end: every mux stream of a runner session carries
// one HTTP/1.1 request. The gateway reads only the request head and the
// response head, and splices every other byte as it is.
//
// Why not Node's HTTP server and client: a runner's mux stream carries
// exactly one request and the agent's stream exactly one response, so the
// gateway needs neither keep-alive framing nor body parsing. Parsing and
// re-encoding both sides cost a WATCH about 40 KB of gateway memory (10,000
// watches: ~400 MB) and every relayed byte two HTTP codec passes; splicing
// costs two mux streams and a closure.
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  DENIED_BY_HEADER,
  deniedByRule,
  firstHeader,
  HeadError,
  RunnerGoneError,
  headerValue,
  HeadTimeoutError,
  parseRequestHead,
  readHead,
  splice,
  statusOf,
  whenBothClosed,
  type RelayResult,
} from '@pipeops/tunnel-protocol';
import type { RunnerSlot } from '../runner-limits.ts';
import type { RunnerForwarder, RunnerStreamIdentity } from '../runner-forwarder.ts';
import { withRule, type ForwardContext, type ForwardCore, type Refusal, type RefusalContext } from './core.ts';
import { forwardedHead, MAX_REQUEST_HEAD_BYTES, MAX_RESPONSE_HEAD_BYTES, runnerResponseHead, targetProblem } from './heads.ts';
import { REQUEST_ID_HEADER, requestIdFrom } from './request-id.ts';

/** What the `/ws/runner` front-end needs besides the core. */
export interface WsRunnerRouteDeps {
  core: ForwardCore;
  /** A stream must deliver its request head within this (ms), or it is reset (and audited with the error `no request head in time`). */
  requestHeadTimeoutMs: number;
}

/** How one stream went: what the record says, or nothing to record (the runner left before asking anything). */
interface Spliced {
  method: string | undefined;
  ctx: RefusalContext | undefined;
  result: RelayResult;
}

/**
 * Relays the streams of `/ws/runner` sessions, one request each: reads the
 * request head, opens the agent stream through the core, and from then on
 * splices bytes both ways, reading only the response head on the way (for
 * the request id, the audit record and the metrics). Never throws.
 */
export class WsRunnerRoute implements RunnerForwarder {
  readonly #deps: WsRunnerRouteDeps;

  constructor(deps: WsRunnerRouteDeps) {
    this.#deps = deps;
  }

  stream(runner: Duplex, who: RunnerStreamIdentity): void {
    const started = performance.now();
    void this.#splice(runner, who).then(
      ({ method, ctx, result }) => {
        if (ctx !== undefined) this.#deps.core.record(method, ctx, result, performance.now() - started);
      },
      () => runner.destroy(),
    );
  }

  async #splice(runner: Duplex, who: RunnerStreamIdentity): Promise<Spliced> {
    const { core } = this.#deps;
    const result: RelayResult = { status: 0, bytesIn: 0, bytesOut: 0, upgraded: false };
    const fallbackCtx = (): ForwardContext => ({ ...who, path: '', route: 'ws-runner', requestId: randomUUID() });
    const refuse = (ctx: ForwardContext, refusal: Refusal, method?: string): Spliced => {
      core.answer(runner, refusal, ctx.requestId, true);
      return { method, ctx: withRule(ctx, refusal), result: { ...result, status: refusal.status, error: new Error(refusal.message) } };
    };
    const protocolError = (ctx: ForwardContext, message: string, method?: string): Spliced =>
      refuse(ctx, { status: 400, message, rule: 'protocol', headers: {} }, method);
    let request: { head: string; rest: Buffer };
    // A stream that never sends its head would hold a mux stream and a closure forever.
    const headTimer = setTimeout(() => runner.destroy(new HeadTimeoutError(this.#deps.requestHeadTimeoutMs)), this.#deps.requestHeadTimeoutMs);
    try {
      request = await readHead(runner, MAX_REQUEST_HEAD_BYTES);
    } catch (err) {
      if (err instanceof HeadError && err.why === 'too-large') return protocolError(fallbackCtx(), 'request head too large');
      runner.destroy();
      // The runner went away before asking anything, or sent no head in time (recorded: it held a stream open).
      if (err instanceof HeadTimeoutError) return { method: undefined, ctx: fallbackCtx(), result: { ...result, error: new Error('no request head in time') } };
      return { method: undefined, ctx: undefined, result };
    } finally {
      clearTimeout(headTimer);
    }
    const head = parseRequestHead(request.head);
    if (head === undefined) return protocolError(fallbackCtx(), 'malformed HTTP request');
    const given = firstHeader(head.headers, REQUEST_ID_HEADER);
    const ctx: ForwardContext = { ...who, path: head.target, route: 'ws-runner', requestId: requestIdFrom(given) };
    const problem = targetProblem(head.method, head.target);
    if (problem !== undefined) return protocolError(ctx, problem, head.method);
    const admitted = core.admit(ctx, head.headers);
    if ('refusal' in admitted) return refuse(ctx, admitted.refusal, head.method);
    releaseOnClose(runner, admitted.slot);
    // Until the response head, the runner closing cancels the exchange (after it, the splice carries the close).
    const gone = new AbortController();
    const runnerGone = (): void => gone.abort(new RunnerGoneError('the runner closed its stream'));
    runner.once('close', runnerGone);
    const exchange = core.begin(ctx, gone.signal);
    let agent: Duplex;
    try {
      agent = await exchange.agent;
    } catch (err) {
      if (gone.signal.aborted) return { method: head.method, ctx, result: { ...result, status: 499 } };
      return refuse(ctx, core.failure(err as Error), head.method);
    }
    // Past the deadline (or with the runner gone) the agent stream is reset; reading its head then fails.
    const abort = (): void => {
      agent.destroy(exchange.signal.reason as Error);
    };
    exchange.signal.addEventListener('abort', abort, { once: true });
    agent.write(forwardedHead(head, REQUEST_ID_HEADER, ctx.requestId));
    if (request.rest.length > 0) {
      result.bytesIn += request.rest.length;
      agent.write(request.rest);
    }
    const pipe = new ExchangePipe(runner, agent, result);
    runner.resume();
    let response: ResponseHead | { error: Error };
    try {
      response = await responseHead(agent);
      // Interim responses (100 Continue, 103 Early Hints) pass through as they are; the final head gets the request id.
      while (!('error' in response) && response.status >= 100 && response.status < 200 && response.status !== 101) {
        runner.write(Buffer.from(`${response.head}\r\n\r\n`, 'latin1'));
        response = await responseHead(agent, response.rest);
      }
    } finally {
      exchange.disarm();
      exchange.signal.removeEventListener('abort', abort);
      runner.off('close', runnerGone);
    }
    if ('error' in response) {
      agent.destroy();
      if (gone.signal.aborted || (response.error instanceof HeadError && response.error.why === 'closed' && runner.destroyed)) {
        return { method: head.method, ctx, result: { ...result, status: 499 } };
      }
      return refuse(ctx, core.failure(response.error), head.method);
    }
    result.status = response.status;
    result.upgraded = response.status === 101;
    // The agent's own refusals are 4xx: only those heads are searched for its deny rule.
    const deniedBy = response.status >= 400 && response.status < 500 ? deniedByRule(headerValue(response.head, DENIED_BY_HEADER)) : undefined;
    if (deniedBy !== undefined) result.deniedBy = deniedBy;
    runner.write(runnerResponseHead(response.head, REQUEST_ID_HEADER, ctx.requestId));
    if (response.rest.length > 0) {
      result.bytesOut += response.rest.length;
      runner.write(response.rest);
    }
    // Not awaited: what a WATCH holds from here on is the pipe, not this function's state.
    return pipe.respond({ method: head.method, ctx, result });
  }
}

/** Releases the runner's stream slot when its stream closes. */
function releaseOnClose(runner: Duplex, slot: RunnerSlot): void {
  runner.on('close', () => slot.release());
}

/**
 * The bytes of one exchange after the request head: the request body (or an
 * upgraded stream's runner side) from the start, the response once its head
 * is through. What a long WATCH keeps in the gateway: two splices and this.
 */
class ExchangePipe {
  readonly #runner: Duplex;
  readonly #agent: Duplex;
  readonly #result: RelayResult;
  #streaming = false;

  constructor(runner: Duplex, agent: Duplex, result: RelayResult) {
    this.#runner = runner;
    this.#agent = agent;
    this.#result = result;
    splice(runner, agent, result, 'bytesIn', () => this.#runnerEnded());
  }

  /** The response head is through: splices the rest of the response; resolves with `value` once both streams closed. */
  respond<T>(value: T): Promise<T> {
    this.#streaming = true;
    splice(this.#agent, this.#runner, this.#result, 'bytesOut');
    this.#agent.resume();
    return whenBothClosed(this.#runner, this.#agent, value);
  }

  // The runner's FIN passes on as a half-close before the response head (a client that half-closes after
  // its request), on an upgraded stream (exec's stdin EOF) and after the response ended. While a response
  // is streaming (a WATCH, logs -f) it means the runner gave up, as Node's HTTP server treats it: reset both.
  #runnerEnded(): void {
    if (!this.#streaming || this.#result.upgraded || this.#agent.readableEnded) {
      this.#agent.end();
      return;
    }
    this.#result.error ??= new Error('the runner closed its stream while the response was streaming');
    this.#agent.destroy();
    this.#runner.destroy();
  }
}

/** A response head read from the agent stream, and the bytes after it. */
interface ResponseHead {
  status: number;
  head: string;
  rest: Buffer;
}

/** The agent's next response head (after `initial`, bytes already read). */
async function responseHead(agent: Duplex, initial?: Buffer): Promise<ResponseHead | { error: Error }> {
  try {
    const { head, rest } = await readHead(agent, MAX_RESPONSE_HEAD_BYTES, initial);
    const status = statusOf(head);
    if (status === undefined) return { error: new Error('the agent sent a malformed response head') };
    return { status, head, rest };
  } catch (err) {
    return { error: err instanceof HeadError && err.why === 'too-large' ? new Error('the agent sent a response head that is too large') : (err as Error) };
  }
}
