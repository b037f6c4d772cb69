import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSession, type Session, type Stream } from '@pipeops/tunnel-mux';
import { websocketDuplex } from '@pipeops/tunnel-protocol';
import type { Logger } from 'pino';
import type { ResolvedConnectOptions } from './config.ts';
import { ClientError } from './errors.ts';
import { dialRunnerSocket } from './internal/dial.ts';

/** Where the tunnel's WebSocket is. */
export type TunnelState = 'connecting' | 'connected' | 'backoff' | 'closed';

/**
 * The runner's end of the tunnel: one WebSocket to the gateway's
 * `/ws/runner` carrying a yamux session (the runner is the mux client), kept
 * up with full-jitter backoff. Each request is a new stream ({@link openStream}).
 *
 * Reconnect policy: a dial that fails waits a delay drawn uniformly from
 * `[0, min(maxIntervalMs, intervalMs · 2^(failures-1))]`; after a lost
 * session the first re-dial is immediate when the session had been up
 * `stableAfterMs`, jittered otherwise. A 401/403 on the upgrade is final.
 *
 * Events: `'state'` (TunnelState), `'connected'`, `'disconnected'` ({ reason }),
 * `'closed'` (error or undefined).
 */
export class TunnelConnection extends EventEmitter {
  readonly #o: ResolvedConnectOptions;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  #state: TunnelState = 'connecting';
  #session: Session | undefined;
  /** Sessions the gateway sent GoAway on (a draining replica): their streams finish while the next session serves. */
  readonly #handingOver = new Set<Session>();
  #closeError: Error | undefined;
  #changed: Array<() => void> = [];
  #first: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #reconnects = 0;

  constructor(options: ResolvedConnectOptions, logger: Logger) {
    super();
    this.#o = options;
    this.#logger = logger;
  }

  /** Current state. */
  get state(): TunnelState {
    return this.#state;
  }

  /** Sessions opened after the first one. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Streams open on the live session and on sessions being handed over. */
  get activeStreams(): number {
    let n = this.#session?.numStreams ?? 0;
    for (const s of this.#handingOver) n += s.numStreams;
    return n;
  }

  /** The live mux session, if connected. */
  get session(): Session | undefined {
    return this.#session;
  }

  /** Why the tunnel closed, once closed with an error. */
  get closeError(): Error | undefined {
    return this.#closeError;
  }

  /**
   * Starts the dial loop; resolves once the first session is up. Rejects with
   * `PT_ERR_AUTH_REJECTED` at once, or `PT_ERR_CLIENT_DIAL_FAILED` when no
   * session could be opened within `connectTimeoutMs`.
   */
  start(): Promise<void> {
    if (this.#first !== undefined) return this.#first;
    this.#first = new Promise<void>((resolve, reject) => {
      this.#loop = this.#run(resolve, reject);
    });
    return this.#first;
  }

  /**
   * Opens a new stream on the live session. While the tunnel is down, waits
   * up to `waitForConnectionMs` for it to come back, then rejects with
   * `PT_ERR_CLIENT_DISCONNECTED`; after close(), `PT_ERR_CLIENT_CLOSED` (or
   * the error that closed it, e.g. `PT_ERR_AUTH_REJECTED`). `waitMs`
   * replaces `waitForConnectionMs` for this stream (a resumed WATCH waits for
   * the tunnel longer than a new request does).
   */
  async openStream(waitMs: number = this.#o.waitForConnectionMs): Promise<Stream> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (this.#state === 'closed') throw this.#closeError ?? new ClientError('PT_ERR_CLIENT_CLOSED');
      const session = this.#session;
      if (session !== undefined && !session.isClosed && !session.remoteGoAway) {
        try {
          return session.open();
        } catch (err) {
          if (Date.now() >= deadline) throw new ClientError('PT_ERR_CLIENT_DISCONNECTED', `cannot open a stream: ${(err as Error).message}`, { cause: err });
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new ClientError(
          'PT_ERR_CLIENT_DISCONNECTED',
          waitMs > 0 ? `the tunnel to the gateway did not come back within ${waitMs} ms` : `the tunnel to the gateway is not connected (state ${this.#state})`,
        );
      }
      await this.#nextChange(left);
    }
  }

  /** Closes the session (and any the gateway is handing over) and stops reconnecting. Idempotent. */
  async close(): Promise<void> {
    if (this.#state !== 'closed') this.#finish(undefined);
    const sessions = [...(this.#session === undefined ? [] : [this.#session]), ...this.#handingOver];
    await Promise.all(
      sessions
        .filter((s) => !s.isClosed)
        .map(async (session) => {
          await session.close(1_000).catch(() => {});
          session.destroy();
        }),
    );
    await this.#loop;
  }

  #setState(state: TunnelState): void {
    if (this.#state === state || this.#state === 'closed') return;
    this.#state = state;
    this.emit('state', state);
    const waiters = this.#changed;
    this.#changed = [];
    for (const w of waiters) w();
  }

  #nextChange(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#changed.push(done);
    });
  }

  #finish(err: Error | undefined): void {
    if (this.#state === 'closed') return;
    this.#closeError = err;
    this.#abort.abort();
    this.#setState('closed');
    this.#state = 'closed';
    this.emit('closed', err);
  }

  async #run(resolveFirst: () => void, rejectFirst: (err: Error) => void): Promise<void> {
    const o = this.#o;
    const r = o.reconnect;
    const signal = this.#abort.signal;
    const startedAt = Date.now();
    let connected = false;
    let failures = 0;
    const jitter = (n: number): number => Math.floor(Math.random() * Math.min(r.maxIntervalMs, r.intervalMs * 2 ** Math.min(n - 1, 40)));
    const giveUp = (err: Error): void => {
      this.#finish(err);
      if (!connected) rejectFirst(err);
    };
    while (!signal.aborted) {
      this.#setState('connecting');
      let ws: Awaited<ReturnType<typeof dialRunnerSocket>>;
      try {
        ws = await dialRunnerSocket(o, signal);
      } catch (err) {
        if (signal.aborted) break;
        const e = err as ClientError;
        if (e.code === 'PT_ERR_AUTH_REJECTED') {
          this.#logger.error({ event: 'tunnel_auth_rejected', status: e.status, cluster: o.cluster }, e.message);
          giveUp(e);
          return;
        }
        failures++;
        let delay = jitter(failures);
        if (!connected) {
          const left = o.connectTimeoutMs - (Date.now() - startedAt);
          if (left <= 0) {
            giveUp(new ClientError('PT_ERR_CLIENT_DIAL_FAILED', `no tunnel to the gateway within ${o.connectTimeoutMs} ms: ${e.message}`, { cause: e }));
            return;
          }
          delay = Math.min(delay, left);
        } else if (!r.enabled || (r.maxAttempts > 0 && failures >= r.maxAttempts)) {
          giveUp(new ClientError('PT_ERR_CLIENT_DISCONNECTED', `reconnect attempts exhausted (${failures}): ${e.message}`, { cause: e }));
          return;
        }
        this.#logger.warn({ event: 'tunnel_dial_failed', failures, delayMs: delay, err: e }, 'dial failed; retrying');
        this.#setState('backoff');
        await sleep(delay, undefined, { signal }).catch(() => {});
        continue;
      }
      const session = createSession(websocketDuplex(ws), { ...o.mux, client: true });
      const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
      const upAt = Date.now();
      this.#session = session;
      if (connected) this.#reconnects++;
      this.#logger.info({ event: 'tunnel_connected', cluster: o.cluster, runnerId: o.runnerId, reconnects: this.#reconnects }, 'tunnel connected');
      this.#setState('connected');
      this.emit('connected');
      if (!connected) {
        connected = true;
        resolveFirst();
      }
      // A GoAway (the gateway replica is draining) is a hand-over: streams in flight finish on this session
      // while the next one is dialed (through the load balancer, to another replica) at once.
      const goneAway = await Promise.race([closed.then(() => false), new Promise<boolean>((resolve) => session.once('goaway', () => resolve(true)))]);
      if (this.#session === session) this.#session = undefined;
      if (signal.aborted) break;
      if (goneAway && !session.isClosed) {
        this.#handingOver.add(session);
        void closed.then(() => {
          this.#handingOver.delete(session);
          // Gone before a new session was up (a lone gateway that stopped): the tunnel is lost after all.
          if (this.#session === undefined && !signal.aborted)
            this.emit('disconnected', { reason: session.closeError?.message ?? 'session closed after GoAway' });
        });
        this.#logger.info(
          { event: 'tunnel_handover', cluster: o.cluster },
          'the gateway is draining; dialing a new tunnel while this one finishes its streams',
        );
        failures = 0;
        continue;
      }
      const reason = session.closeError?.message ?? 'session closed';
      this.#logger.warn({ event: 'tunnel_disconnected', reason, upMs: Date.now() - upAt }, 'tunnel lost; reconnecting');
      this.emit('disconnected', { reason });
      if (!r.enabled) {
        giveUp(new ClientError('PT_ERR_CLIENT_DISCONNECTED', `the tunnel was lost and reconnect is disabled: ${reason}`, { cause: session.closeError }));
        return;
      }
      if (Date.now() - upAt >= r.stableAfterMs) failures = 0;
      const delay = failures === 0 ? 0 : jitter(failures);
      failures++;
      if (delay > 0) {
        this.#setState('backoff');
        await sleep(delay, undefined, { signal }).catch(() => {});
      }
    }
  }
}
