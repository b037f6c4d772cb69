import { EventEmitter } from 'node:events';
import type WebSocket from 'ws';
import type { Logger } from 'pino';
import { createSession } from '@pipeops/tunnel-mux';
import type { Session } from '@pipeops/tunnel-mux';
import { websocketDuplex } from '@pipeops/tunnel-protocol';
import type { WelcomeMessage } from '@pipeops/tunnel-protocol';
import { Backoff } from './backoff.ts';
import type { AgentOptions } from './config.ts';
import { defaultAgentOptions, tunnelUrlFromApiUrl } from './config.ts';
import { AgentControl } from './control.ts';
import { DialError, dialTunnel, loadCaTrust, planDial } from './dial.ts';
import type { CaTrust, DialPlan } from './dial.ts';
import { AgentError } from './errors.ts';
import type { AgentMetrics, AgentState, FailureReason } from './metrics.ts';
import { waitBeforeDial } from './probe.ts';
import type { StreamDispatcher } from './streams.ts';

export interface ConnectorOptions {
  options: AgentOptions;
  logger: Logger;
  metrics: AgentMetrics;
  dispatcher: StreamDispatcher;
}

/** How long a session the gateway asked the agent to leave may serve on before the agent retires it itself (ms). */
export const HANDOVER_GRACE_MS = 60_000;

/** How one established session ended. */
interface SessionEnd {
  upMs: number;
  /** The gateway asked for a re-dial (control `reconnect` or GoAway). */
  requested: boolean;
  /** A newer session for the cluster took this one's place (another agent, or this one's own re-dial). */
  replaced: boolean;
  reason: string;
}

/** The session currently up, with what close() needs. */
interface LiveSession {
  session: Session;
  control: AgentControl;
}

/**
 * The dial loop and its state machine:
 *
 * `idle → connecting → connected → backoff → connecting → … → closed`
 *
 * Emits `'state'` (state), `'connected'` ({ sessionId }), `'disconnected'`
 * ({ reason }). {@link done} resolves after close(), or rejects with
 * `PT_ERR_AUTH_REJECTED` / `PT_ERR_RECONNECT_EXHAUSTED`.
 */
export class Connector extends EventEmitter {
  readonly #o: AgentOptions;
  readonly #log: Logger;
  readonly #metrics: AgentMetrics;
  readonly #dispatcher: StreamDispatcher;
  readonly #plan: DialPlan;
  readonly #backoff: Backoff;
  readonly #abort = new AbortController();
  readonly #startedAt = performance.now();
  #state: AgentState = 'idle';
  #ca: CaTrust | undefined;
  #live: LiveSession | undefined;
  #closing = false;
  #closeDeadlineMs = 5_000;
  #loop: Promise<void> | undefined;
  #everConnected = false;
  /**
   * The session that replaced this agent's last one (control error
   * `PT_ERR_SESSION_REPLACED`), sent with each dial until one is welcomed:
   * while any session holds the cluster the gateway answers 409 and this
   * agent stands by, dialing at its backoff pace, so agents of one cluster
   * never take it from each other in turn. The newer agent wins.
   */
  #replacedBy: string | undefined;
  readonly #draining = new Set<Promise<void>>();
  /**
   * Sessions the gateway asked the agent to leave (control `reconnect`,
   * GoAway), kept serving the streams the gateway opens on them while the
   * next session is dialed: make before break, so a rolling gateway update
   * leaves no moment without a tunnel. The gateway ends such a session once
   * it no longer routes to it (a fleet replica when the cluster's new claim
   * lands, a lone gateway at the end of its drain): if the agent retired it
   * itself, a stream the gateway opened in the same instant would be reset.
   * Retired here only after {@link HANDOVER_GRACE_MS}, for a gateway that never does.
   */
  readonly #handingOver = new Set<LiveSession>();
  readonly done: Promise<void>;
  #resolveDone!: () => void;
  #rejectDone!: (err: Error) => void;

  constructor(c: ConnectorOptions) {
    super();
    this.#o = c.options;
    this.#log = c.logger;
    this.#metrics = c.metrics;
    this.#dispatcher = c.dispatcher;
    this.#plan = planDial(tunnelUrlFromApiUrl(c.options.apiUrl, c.options.allowInsecureTransport), c.options);
    const r = c.options.reconnect;
    this.#backoff = new Backoff({
      intervalMs: r.intervalMs,
      maxIntervalMs: r.maxIntervalMs,
      stableAfterMs: r.stableAfterMs ?? defaultAgentOptions.reconnect.stableAfterMs,
    });
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    // `done` may reject before anyone awaits it; that is not an unhandled rejection.
    this.done.catch(() => {});
    if (c.options.tls.caFile !== undefined) this.#ca = loadCaTrust(c.options.tls.caFile);
  }

  get state(): AgentState {
    return this.#state;
  }

  /** The tunnel URL being dialed (no secrets in it). */
  get url(): URL {
    return this.#plan.url;
  }

  /** Uptime of the connector, s. */
  uptimeSeconds(): number {
    return (performance.now() - this.#startedAt) / 1000;
  }

  start(): void {
    if (this.#loop !== undefined) return;
    const fields: Record<string, unknown> = { url: this.#plan.url.href, agentId: this.#o.agentId, cluster: this.#o.clusterName };
    if (this.#plan.proxy !== undefined) fields.proxied = true;
    this.#log.info(fields, 'connector starting');
    this.#warnInsecure('start');
    this.#loop = this.#run().then(
      () => {
        this.#setState('closed');
        this.#resolveDone();
      },
      (err: Error) => {
        this.#setState('closed');
        this.#log.error({ err: { code: (err as { code?: string }).code, message: err.message } }, 'connector stopped');
        this.#rejectDone(err);
      },
    );
  }

  /**
   * Stops dialing; sends GoAway; lets in-flight streams finish for up to
   * `deadlineMs`; closes the session. Idempotent.
   */
  async close(deadlineMs = 5_000): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#closeDeadlineMs = deadlineMs;
      this.#abort.abort();
      for (const live of [...(this.#live === undefined ? [] : [this.#live]), ...this.#handingOver]) {
        live.control.close();
        void live.session.close(deadlineMs).catch(() => {});
      }
      this.#handingOver.clear();
      if (this.#loop === undefined) {
        this.#setState('closed');
        this.#resolveDone();
      }
    }
    await this.#loop;
    await Promise.allSettled([...this.#draining]);
  }

  #setState(s: AgentState): void {
    if (this.#state === s) return;
    this.#state = s;
    this.#metrics.setState(s);
    this.emit('state', s);
  }

  #warnInsecure(when: string): void {
    if (!this.#o.tls.insecureSkipVerify) return;
    this.#log.warn(
      { when, insecureSkipVerify: true },
      'TLS certificate verification is DISABLED (tls.insecureSkipVerify): the gateway identity is not checked; never use this in production',
    );
  }

  async #run(): Promise<void> {
    const r = this.#o.reconnect;
    let delayMs = 0;
    let refusing = false;
    // After a dial the probe triggered fails, the port must be seen refusing
    // again before the probe may shorten a wait: no storm against a listener
    // that accepts and resets.
    let probeTriggered = false;
    let failedDials = 0;
    for (let first = true; ; first = false) {
      if (this.#closing) return;
      if (!first) {
        this.#setState('backoff');
        this.#log.debug({ delayMs, failures: this.#backoff.failures }, 'backoff');
        const outcome = await waitBeforeDial({
          delayMs,
          probe: this.#plan.probe,
          refusing,
          signal: this.#abort.signal,
          probeIntervalMs: r.probeIntervalMs ?? defaultAgentOptions.reconnect.probeIntervalMs,
          onRefusing: () => this.#log.debug({ event: 'gateway_port_refusing' }, 'gateway port refuses connections; dialing as soon as it accepts'),
        });
        if (outcome === 'aborted' || this.#closing) return;
        probeTriggered = outcome === 'port-open';
        if (probeTriggered) this.#log.info('gateway port accepts connections again, dialing now');
      }
      this.#setState('connecting');
      let ws: WebSocket;
      try {
        if (this.#o.tls.caFile !== undefined) this.#reloadCa();
        ws = await dialTunnel({
          plan: this.#plan,
          options: this.#o,
          ca: this.#ca,
          logger: this.#log,
          signal: this.#abort.signal,
          replacedBy: this.#replacedBy,
        });
      } catch (err) {
        if (this.#closing) return;
        const e = err instanceof DialError ? err : new DialError('other', String(err), { cause: err });
        this.#metrics.failures.inc({ reason: e.reason });
        if (e.reason === 'auth') {
          throw new AgentError('PT_ERR_AUTH_REJECTED', e.message, { cause: e, ...(e.httpStatus === undefined ? {} : { status: e.httpStatus }) });
        }
        if (e.reason === 'held') {
          // Standing by is not failing: it never exhausts reconnect.maxAttempts.
          this.#log.info({ event: 'tunnel_standby', replacedBy: this.#replacedBy }, 'a newer session holds the cluster; standing by until it is free');
          delayMs = this.#backoff.afterDialFailure();
          refusing = false;
          continue;
        }
        failedDials++;
        this.#log.warn({ reason: e.reason, status: e.httpStatus, error: e.message, failedDials }, 'tunnel dial failed');
        this.#giveUpIfExhausted(failedDials, e);
        delayMs = this.#backoff.afterDialFailure();
        refusing = e.refused && !probeTriggered;
        continue;
      }
      const end = await this.#runSession(ws);
      if (this.#closing) return;
      if (end === 'handshake-failed') {
        failedDials++;
        this.#giveUpIfExhausted(failedDials, undefined);
        delayMs = this.#backoff.afterDialFailure();
        refusing = false;
        continue;
      }
      failedDials = 0;
      if (!r.enabled) throw new AgentError('PT_ERR_RECONNECT_EXHAUSTED', `tunnel lost (${end.reason}) and reconnect is disabled`);
      // Replaced: the next dial waits like a failed one (it is refused while the newer session holds the cluster).
      delayMs = end.requested ? 0 : end.replaced ? this.#backoff.afterDialFailure() : this.#backoff.afterSessionLoss(end.upMs);
      refusing = false;
    }
  }

  /** GoAway, then in-flight streams finish in the background (up to `timeoutMs`) while the agent goes on. */
  #drain(live: LiveSession): void {
    live.control.close();
    const drain = live.session.close(this.#o.timeoutMs).catch(() => {});
    this.#draining.add(drain);
    void drain.finally(() => this.#draining.delete(drain));
  }

  #giveUpIfExhausted(failedDials: number, cause: Error | undefined): void {
    const r = this.#o.reconnect;
    const opts = cause === undefined ? undefined : { cause };
    if (!r.enabled) throw new AgentError('PT_ERR_RECONNECT_EXHAUSTED', 'tunnel dial failed and reconnect is disabled', opts);
    if (r.maxAttempts > 0 && failedDials >= r.maxAttempts) {
      throw new AgentError('PT_ERR_RECONNECT_EXHAUSTED', `tunnel dial failed ${failedDials} times in a row (reconnect.maxAttempts)`, opts);
    }
  }

  #reloadCa(): void {
    try {
      this.#ca = loadCaTrust(this.#o.tls.caFile as string, this.#ca);
    } catch (err) {
      this.#log.warn({ err: { message: (err as Error).message } }, 'could not re-read tls.caFile; using the previous copy');
    }
  }

  /** Runs one session from hello to its end. */
  async #runSession(ws: WebSocket): Promise<SessionEnd | 'handshake-failed'> {
    this.#warnInsecure('connect');
    const log = this.#log;
    const transport = websocketDuplex(ws);
    const session = createSession(transport, { ...this.#o.mux, client: true });
    session.on('error', () => {});
    let control: AgentControl;
    try {
      control = new AgentControl({
        stream: session.open(),
        options: this.#o,
        logger: log,
        source: {
          uptimeSeconds: () => this.uptimeSeconds(),
          streamsActive: () => this.#dispatcher.active,
          bytes: () => this.#metrics.totals(),
          rttMs: () => (session.rttMs === undefined ? undefined : Math.round(session.rttMs * 1000) / 1000),
        },
      });
    } catch (err) {
      session.destroy();
      log.warn({ error: (err as Error).message }, 'could not open the control stream');
      this.#metrics.failures.inc({ reason: 'handshake' });
      return 'handshake-failed';
    }
    // Streams the gateway opens (even before welcome) go to the dispatcher.
    session.on('stream', (s) => void this.#dispatcher.handle(s));
    let welcome: WelcomeMessage;
    let onAbort: (() => void) | undefined;
    try {
      welcome = await Promise.race([
        control.handshake(this.#o.timeoutMs),
        new Promise<never>((_, reject) => {
          onAbort = (): void => reject(new AgentError('PT_ERR_AGENT_CLOSED'));
          if (this.#abort.signal.aborted) onAbort();
          else this.#abort.signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } catch (err) {
      control.close();
      session.destroy();
      if (this.#closing) return { upMs: 0, requested: false, replaced: false, reason: 'closed' };
      const code = (err as { code?: string }).code;
      const reason: FailureReason = code === 'PT_ERR_HANDSHAKE_TIMEOUT' ? 'timeout' : 'handshake';
      this.#metrics.failures.inc({ reason });
      if (code === 'PT_ERR_PROTOCOL_VERSION') log.error({ event: 'protocol_mismatch', reason, code }, (err as Error).message);
      else log.warn({ reason, code, error: (err as Error).message }, 'tunnel handshake failed');
      return 'handshake-failed';
    } finally {
      if (onAbort !== undefined) this.#abort.signal.removeEventListener('abort', onAbort);
    }
    const upAt = performance.now();
    const slog = log.child({ sessionId: welcome.sessionId });
    this.#replacedBy = undefined;
    this.#live = { session, control };
    this.#metrics.attachSession(
      () => session.stats,
      () => session.rttMs,
    );
    this.#metrics.connects.inc();
    if (this.#everConnected) this.#metrics.reconnects.inc();
    this.#everConnected = true;
    this.#setState('connected');
    slog.info({ gatewayVersion: welcome.gatewayVersion }, 'tunnel connected');
    this.emit('connected', { sessionId: welcome.sessionId });
    control.startReports();

    const end = await new Promise<{ requested: boolean; replaced: boolean; reason: string }>((resolve) => {
      let ended = false;
      const finish = (requested: boolean, reason: string, replaced = false): void => {
        if (ended) return;
        ended = true;
        session.off('close', onClose);
        session.off('goaway', onGoAway);
        control.off('reconnect', onReconnect);
        control.off('replaced', onReplaced);
        control.off('close', onControlClose);
        this.#abort.signal.removeEventListener('abort', onAbort);
        resolve({ requested, replaced, reason });
      };
      const onClose = (): void => {
        const e = session.closeError as { code?: string; message?: string } | undefined;
        finish(false, e?.code ?? 'session closed');
      };
      // The gateway sends a replaced session its error on the control stream, then GoAway: the GoAway is read a turn
      // later, so that an error it follows decides how the session ended.
      const onGoAway = (): void => {
        setImmediate(() => finish(true, 'gateway goaway'));
      };
      const onReconnect = (): void => finish(true, 'gateway asked to reconnect');
      const onReplaced = (by: string | undefined): void => {
        this.#replacedBy = by;
        slog.info(
          { event: 'tunnel_replaced', replacedBy: by },
          'a newer session for this cluster replaced this one; this agent stands by while the cluster is held',
        );
        finish(false, 'replaced by a newer session', true);
      };
      const onAbort = (): void => finish(false, 'agent closing');
      // Without its control stream the gateway cannot see this agent's status: start over.
      const onControlClose = (): void => {
        if (session.isClosed) onClose();
        else finish(false, 'control stream closed');
      };
      session.on('close', onClose);
      control.on('close', onControlClose);
      session.on('goaway', onGoAway);
      control.on('reconnect', onReconnect);
      control.on('replaced', onReplaced);
      this.#abort.signal.addEventListener('abort', onAbort, { once: true });
      if (session.isClosed) onClose();
    });
    const upMs = performance.now() - upAt;
    this.#live = undefined;
    this.#metrics.detachSession();
    if (this.#closing) {
      // close() already sent GoAway; wait for in-flight streams up to the deadline.
      control.close();
      await session.close(this.#closeDeadlineMs).catch(() => {});
    } else if (!session.isClosed && end.requested) {
      // Asked to leave: the session keeps carrying the gateway's streams while the next one is dialed, until the
      // gateway ends it (or, for a gateway that never does, HANDOVER_GRACE_MS passes).
      const kept: LiveSession = { session, control };
      this.#handingOver.add(kept);
      const retire = setTimeout(() => {
        if (this.#handingOver.delete(kept)) this.#drain(kept);
      }, HANDOVER_GRACE_MS);
      retire.unref();
      session.once('close', () => {
        clearTimeout(retire);
        this.#handingOver.delete(kept);
        control.close();
      });
      slog.info({ event: 'tunnel_handover', reason: end.reason }, 'the gateway asked for a new tunnel; the old one serves until the gateway ends it');
    } else if (!session.isClosed) {
      // Drain in the background: in-flight streams finish on the old session
      // while the next dial starts at once.
      this.#drain({ session, control });
    } else {
      control.close();
    }
    slog.info({ reason: end.reason, upMs: Math.round(upMs) }, 'tunnel disconnected');
    this.emit('disconnected', { reason: end.reason });
    return { upMs, requested: end.requested, replaced: end.replaced, reason: end.reason };
  }
}
