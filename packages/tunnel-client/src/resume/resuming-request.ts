// One resumable request (a WATCH, or a `logs -f` with timestamps) as an
// undici dispatch handler wrapped around the caller's. Each attempt is its
// own dispatch on a fresh tunnel stream; the caller sees one response: the
// first head, then the body of every attempt with what it already has left
// out (watch-tracker.ts, log-tracker.ts).
//
// When the stream is cut by the tunnel (the session ends, the stream is
// reset, the connection closes mid-body) and not by the caller, the request
// is sent again, from where it was, once the tunnel is back: each attempt
// may wait for the tunnel what is left of `maxWaitMs`; an attempt the gateway
// or the agent cannot serve yet (429, 502, 503, 504: the agent has not
// reconnected) is tried again after the reconnect backoff. A resumed watch
// the API server refuses (410 Gone: the resourceVersion is too old, or any
// other status) ends with that Status as an ERROR event, as the API server
// itself ends a watch; a resumed follow it refuses ends with the original
// error. Past `maxWaitMs` the caller gets the error it would have got without
// resuming. A normal end (the API server's timeout) is passed on as it is.
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { kubeStatus } from '@pipeops/tunnel-protocol';
import { LogTracker } from './log-tracker.ts';
import { StableController } from './stable-controller.ts';
import { logsResumePath, watchResumePath, type ResumePlan } from './resume-plan.ts';
import { WatchTracker } from './watch-tracker.ts';

/** What a {@link ResumingRequest} needs from the dispatcher. */
export interface ResumeDeps {
  /** Dispatches one attempt on a new stream; opening the stream may wait up to `waitMs` (default: `waitForConnectionMs`) for the tunnel. */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, waitMs: number | undefined): void;
  /** How long after a drop the request keeps trying, ms. */
  maxWaitMs: number;
  /** Full-jitter backoff between attempts (the tunnel's reconnect policy), ms. */
  intervalMs: number;
  maxIntervalMs: number;
  logger: Logger;
  /** Called once the request is over (the dispatcher forgets it). */
  done(request: ResumingRequest): void;
}

/** Statuses of an attempt the gateway or the agent could not serve yet: tried again. */
const NOT_YET = new Set([429, 502, 503, 504]);
/** Error codes of a stream cut by the tunnel (mux, socket) rather than by the caller or a timeout. */
const CUT_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'ECONNABORTED']);
/** Largest error body of a refused attempt kept for the ERROR event, bytes. */
const MAX_REFUSAL_BYTES = 64 * 1024;

/** True when `err` is a stream cut by the tunnel. */
export function isTunnelCut(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && ((code.startsWith('PT_ERR_MUX_') && code !== 'PT_ERR_MUX_CONFIG') || CUT_CODES.has(code));
}

/** True when an attempt failed in a way worth another try: cut again, or the tunnel not back within the attempt's wait. */
function isRetryable(err: unknown): boolean {
  return isTunnelCut(err) || (err as { code?: unknown } | null)?.code === 'PT_ERR_CLIENT_DISCONNECTED';
}

function isJson(headers: Record<string, string | string[] | undefined>): boolean {
  const ct = headers['content-type'];
  return /^application\/json\b/i.test(Array.isArray(ct) ? (ct[0] ?? '') : (ct ?? ''));
}

/** An outage: from the cut until a resumed attempt answers. */
interface Outage {
  since: number;
  deadline: number;
  /** The error that cut the stream: what the caller gets if the resume fails. */
  cause: Error;
  attempts: number;
}

type Mode = { kind: 'pass' } | { kind: 'track' } | { kind: 'refused'; status: number; chunks: Buffer[]; bytes: number };

/** A resumable request in flight; {@link start} sends the first attempt. */
export class ResumingRequest {
  readonly #plan: ResumePlan;
  readonly #options: Dispatcher.DispatchOptions;
  readonly #downstream: Dispatcher.DispatchHandler;
  readonly #deps: ResumeDeps;
  readonly #log: Logger;
  readonly #controller: StableController;
  readonly #watch: WatchTracker | undefined;
  readonly #logs: LogTracker | undefined;
  readonly #startedAt = Date.now();
  #headSent = false;
  #mode: Mode = { kind: 'pass' };
  /** Id of the attempt whose callbacks count (0: none). */
  #current = 0;
  #seq = 0;
  /** The current attempt reached onRequestStart (its controller is the target). */
  #started = false;
  #outage: Outage | undefined;
  #timer: NodeJS.Timeout | undefined;
  #finished = false;

  constructor(plan: ResumePlan, options: Dispatcher.DispatchOptions, downstream: Dispatcher.DispatchHandler, deps: ResumeDeps) {
    this.#plan = plan;
    this.#options = options;
    this.#downstream = downstream;
    this.#deps = deps;
    this.#log = deps.logger.child({ kind: plan.kind, path: plan.path.split('?')[0] });
    this.#controller = new StableController((reason) => this.#callerAborted(reason));
    if (plan.kind === 'watch') {
      const rv = new URL(plan.path, 'http://resume.invalid').searchParams.get('resourceVersion');
      this.#watch = new WatchTracker({
        callerBookmarks: plan.callerBookmarks,
        explicitStart: rv !== null && rv !== '' && rv !== '0',
        initialEvents: plan.initialEvents,
      });
    } else {
      this.#logs = new LogTracker();
    }
  }

  /** Sends the first attempt. */
  start(): void {
    this.#attempt(this.#plan.path);
  }

  /** Ends the request with `err` (the tunnel is being closed) unless it is over. */
  cancel(err: Error): void {
    if (this.#finished) return;
    const cause = this.#outage?.cause ?? err;
    if (this.#outage === undefined && this.#started) return; // a live attempt ends through its own stream
    this.#fail(cause);
  }

  #attempt(path: string): void {
    const id = ++this.#seq;
    this.#current = id;
    this.#started = false;
    // The first attempt waits for the tunnel as any request does (waitForConnectionMs); a resume, what is left of maxWaitMs.
    const waitMs = this.#outage === undefined ? undefined : Math.max(0, this.#outage.deadline - Date.now());
    if (this.#outage !== undefined) this.#outage.attempts++;
    this.#deps.dispatch({ ...this.#options, path }, this.#handlerFor(id), waitMs);
  }

  #handlerFor(id: number): Dispatcher.DispatchHandler {
    const live = (): boolean => id === this.#current && !this.#finished;
    return {
      onRequestStart: (controller, context) => {
        if (!live()) {
          controller.abort(new Error('superseded attempt'));
          return;
        }
        this.#started = true;
        this.#controller.target = controller;
        if (id === 1) this.#downstream.onRequestStart?.(this.#controller, context);
      },
      onRequestUpgrade: (_controller, statusCode, headers, socket) => {
        if (live()) this.#downstream.onRequestUpgrade?.(this.#controller, statusCode, headers, socket);
      },
      onResponseStarted: () => {
        if (live() && !this.#headSent) this.#downstream.onResponseStarted?.();
      },
      onResponseStart: (controller, statusCode, headers, statusMessage) => {
        if (live()) this.#onHead(controller, statusCode, headers as Record<string, string | string[] | undefined>, statusMessage);
      },
      onResponseData: (_controller, chunk) => {
        if (live()) this.#onData(chunk);
      },
      onResponseEnd: (_controller, trailers) => {
        if (live()) this.#onEnd(trailers);
      },
      onResponseError: (_controller, err) => {
        if (live()) this.#onError(err);
      },
      onBodySent: (chunk) => {
        if (live() && id === 1) this.#downstream.onBodySent?.(chunk);
      },
      onRequestSent: () => {
        if (live() && id === 1) this.#downstream.onRequestSent?.();
      },
    };
  }

  #onHead(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: Record<string, string | string[] | undefined>,
    message: string | undefined,
  ): void {
    if (status < 200) {
      if (!this.#headSent) this.#downstream.onResponseStart?.(this.#controller, status, headers as never, message);
      return;
    }
    const outage = this.#outage;
    if (outage !== undefined && NOT_YET.has(status)) {
      // The gateway or the agent cannot serve it yet: drop this answer, try again after a backoff (or give up).
      this.#current = 0;
      controller.abort(new Error(`attempt answered ${status}`));
      if (Date.now() < outage.deadline) this.#retryLater();
      else this.#fail(outage.cause, 'timeout');
      return;
    }
    const ok = status >= 200 && status < 300;
    if (!this.#headSent) {
      this.#headSent = true;
      this.#mode = ok && (this.#plan.kind === 'logs' || isJson(headers)) ? { kind: 'track' } : { kind: 'pass' };
      if (outage !== undefined) this.#resumed(status);
      this.#downstream.onResponseStart?.(this.#controller, status, headers as never, message);
      return;
    }
    if (ok) {
      this.#watch?.resumed();
      this.#logs?.resumed();
      this.#mode = { kind: 'track' };
      this.#resumed(status);
      return;
    }
    this.#mode = { kind: 'refused', status, chunks: [], bytes: 0 };
  }

  #onData(chunk: Buffer): void {
    const mode = this.#mode;
    if (mode.kind === 'pass') {
      this.#downstream.onResponseData?.(this.#controller, chunk);
      return;
    }
    if (mode.kind === 'refused') {
      if (mode.bytes < MAX_REFUSAL_BYTES) {
        mode.chunks.push(chunk);
        mode.bytes += chunk.length;
      }
      return;
    }
    for (const piece of this.#tracker().push(chunk)) {
      if (this.#finished) return;
      this.#downstream.onResponseData?.(this.#controller, piece);
    }
  }

  #onEnd(trailers: Dispatcher.DispatchController['rawTrailers'] | Record<string, string | string[] | undefined>): void {
    const mode = this.#mode;
    if (mode.kind === 'refused') {
      this.#refused(mode.status, Buffer.concat(mode.chunks));
      return;
    }
    if (mode.kind === 'track') for (const piece of this.#tracker().flush()) this.#downstream.onResponseData?.(this.#controller, piece);
    this.#finish();
    this.#downstream.onResponseEnd?.(this.#controller, trailers as never);
  }

  #onError(err: Error): void {
    if (this.#controller.aborted) {
      this.#finish();
      this.#downstream.onResponseError?.(this.#controller, err);
      return;
    }
    const outage = this.#outage;
    if (outage !== undefined) {
      // An attempt of the resume failed.
      if (isRetryable(err) && Date.now() < outage.deadline) this.#retryLater();
      else this.#fail(outage.cause, isRetryable(err) ? 'timeout' : 'error', err);
      return;
    }
    // The first attempt failed before any head (e.g. the tunnel is down now): as without resuming.
    const cutBeforeHead = !this.#headSent && this.#seq === 1 && this.#started && isTunnelCut(err);
    const cutMidBody = this.#headSent && this.#mode.kind === 'track' && isTunnelCut(err);
    if (!cutBeforeHead && !cutMidBody) {
      this.#finish();
      this.#downstream.onResponseError?.(this.#controller, err);
      return;
    }
    const why = this.#plan.kind === 'watch' ? this.#watch?.notResumable() : this.#logs?.notResumable();
    if (why !== undefined) {
      this.#log.warn({ event: `${this.#plan.kind}_not_resumed`, reason: why, err }, 'stream cut by the tunnel; not resumable');
      this.#finish();
      this.#downstream.onResponseError?.(this.#controller, err);
      return;
    }
    this.#watch?.cut();
    this.#logs?.cut();
    const now = Date.now();
    this.#outage = { since: now, deadline: now + this.#deps.maxWaitMs, cause: err, attempts: 0 };
    this.#controller.target = undefined;
    this.#log.warn(
      {
        event: `${this.#plan.kind}_interrupted`,
        err,
        resourceVersion: this.#watch?.resourceVersion,
        sinceTime: this.#logs?.sinceTime(),
        maxWaitMs: this.#deps.maxWaitMs,
      },
      'stream cut by the tunnel; resuming',
    );
    this.#next();
  }

  /** The next attempt, now. */
  #next(): void {
    this.#timer = undefined;
    if (this.#finished) return;
    let path: string | undefined;
    if (this.#plan.kind === 'watch') {
      path = watchResumePath(this.#plan, this.#watch?.resourceVersion, Date.now() - this.#startedAt);
      if (path === undefined) {
        // timeoutSeconds is over: the API server would have ended the watch by now.
        this.#finish();
        if (this.#headSent) this.#downstream.onResponseEnd?.(this.#controller, {});
        else this.#downstream.onResponseError?.(this.#controller, this.#outage?.cause ?? new Error('watch timed out'));
        return;
      }
    } else {
      const since = this.#logs?.sinceTime();
      path = since === undefined ? this.#plan.path : logsResumePath(this.#plan, since);
    }
    this.#attempt(path);
  }

  #retryLater(): void {
    const outage = this.#outage;
    if (outage === undefined) return;
    const ceiling = Math.min(this.#deps.maxIntervalMs, this.#deps.intervalMs * 2 ** Math.min(Math.max(outage.attempts - 1, 0), 30));
    const delay = Math.min(Math.floor(Math.random() * ceiling), Math.max(0, outage.deadline - Date.now()));
    this.#controller.target = undefined;
    this.#timer = setTimeout(() => this.#next(), delay);
  }

  #resumed(status: number): void {
    const outage = this.#outage;
    this.#outage = undefined;
    if (outage === undefined) return;
    this.#log.info(
      {
        event: `${this.#plan.kind}_resumed`,
        status,
        resourceVersion: this.#watch?.resourceVersion,
        sinceTime: this.#logs?.sinceTime(),
        attempts: outage.attempts,
        outageMs: Date.now() - outage.since,
      },
      'stream resumed',
    );
  }

  /** A resumed attempt was refused with `status`: a watch ends with it as an ERROR event, a follow with the original error. */
  #refused(status: number, body: Buffer): void {
    const outage = this.#outage;
    const cause = outage?.cause ?? new Error(`resume refused with ${status}`);
    this.#outage = undefined;
    this.#log.warn(
      {
        event: `${this.#plan.kind}_resume_failed`,
        reason: status === 410 ? 'expired' : 'refused',
        status,
        resourceVersion: this.#watch?.resourceVersion,
        attempts: outage?.attempts,
        outageMs: outage === undefined ? undefined : Date.now() - outage.since,
      },
      'the API server refused the resumed stream',
    );
    this.#finish();
    if (this.#plan.kind !== 'watch') {
      this.#downstream.onResponseError?.(this.#controller, cause);
      return;
    }
    let object: unknown;
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { kind?: unknown };
      if (parsed.kind === 'Status') object = parsed;
    } catch {
      // not a Status: one is made below
    }
    object ??= kubeStatus(
      status,
      status === 410 ? 'too old resource version' : `the API server answered ${status} to the resumed watch`,
      status === 410 ? 'Expired' : undefined,
    );
    this.#downstream.onResponseData?.(this.#controller, Buffer.from(`${JSON.stringify({ type: 'ERROR', object })}\n`));
    this.#downstream.onResponseEnd?.(this.#controller, {});
  }

  #fail(cause: Error, reason?: 'timeout' | 'error' | 'closed', last?: Error): void {
    const outage = this.#outage;
    if (outage !== undefined) {
      this.#log.warn(
        {
          event: `${this.#plan.kind}_resume_failed`,
          reason: reason ?? 'closed',
          attempts: outage.attempts,
          outageMs: Date.now() - outage.since,
          ...(last !== undefined ? { err: last } : {}),
        },
        'the stream could not be resumed',
      );
    }
    this.#finish();
    this.#downstream.onResponseError?.(this.#controller, cause);
  }

  #callerAborted(reason: Error): void {
    if (this.#finished) return;
    if (this.#started && this.#outage === undefined) {
      // A live attempt: its stream is aborted and reports the error (onError above).
      this.#controller.abortTarget(reason);
      return;
    }
    this.#finish();
    this.#downstream.onResponseError?.(this.#controller, reason);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#current = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#deps.done(this);
  }

  #tracker(): WatchTracker | LogTracker {
    return (this.#watch ?? this.#logs) as WatchTracker | LogTracker;
  }
}
