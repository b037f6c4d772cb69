import { Counter, Gauge, collectDefaultMetrics } from 'prom-client';
import type { Registry } from 'prom-client';
import type { SessionCounters } from '@pipeops/tunnel-mux';
import {
  connectFailureReasons,
  EVENT_LOOP_SAMPLE_MS,
  STREAM_KINDS,
  StreamAccounting,
  streamMetricSpecs,
  type ConnectFailureReason,
} from '@pipeops/tunnel-protocol';

/** Connector states, also the values of the `state` label. */
export const agentStates = ['idle', 'connecting', 'connected', 'backoff', 'closed'] as const;
export type AgentState = (typeof agentStates)[number];

/** `reason` label values of `pipeops_tunnel_connect_failures_total` (the protocol's list, shared with the gateway). */
export type FailureReason = ConnectFailureReason;
/** `result` label values of `pipeops_tunnel_streams_total` (the protocol's list, shared with the gateway). */
export type { StreamResult } from '@pipeops/tunnel-protocol';
/** `kind` label values of the stream metrics: the protocol's kinds, and `unknown` for a stream refused before its preamble was read. */
export type StreamKindLabel = (typeof STREAM_KINDS)[number] | 'unknown';

/** Cumulative counters of one mux session (a subset of `Session.stats`). */
export type { SessionCounters } from '@pipeops/tunnel-mux';

const zero = (): SessionCounters => ({ bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0, resetsIn: 0, resetsOut: 0 });

/**
 * The agent's metrics, registered on the injected registry (names per
 * docs/contracts.md). Byte/frame/reset counters are read from the live mux
 * session at scrape time and carried over across sessions.
 */
export class AgentMetrics {
  readonly state: Gauge<'state'>;
  readonly connects: Counter;
  readonly reconnects: Counter;
  readonly failures: Counter<'reason'>;
  readonly streamsActive: Gauge<'kind'>;
  readonly streamsTotal: Counter<'kind' | 'result'>;
  readonly streamsOpened: Counter<'kind'>;
  /** Every inbound stream goes through it: opened, then closed once, or refused (see the protocol's stream-accounting.ts). */
  readonly streams: StreamAccounting<StreamKindLabel>;
  readonly rtt: Gauge;
  #closedTotals: SessionCounters = zero();
  #live: (() => SessionCounters) | undefined;
  #rttMs: (() => number | undefined) | undefined;

  constructor(register: Registry) {
    const registers = [register];
    if (register.getSingleMetric('process_cpu_user_seconds_total') === undefined)
      collectDefaultMetrics({ register, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.state = new Gauge({ name: 'pipeops_tunnel_connection_state', help: '1 for the current tunnel connection state', labelNames: ['state'], registers });
    this.connects = new Counter({ name: 'pipeops_tunnel_connects_total', help: 'Tunnel sessions established', registers });
    this.reconnects = new Counter({ name: 'pipeops_tunnel_reconnects_total', help: 'Tunnel sessions established after a previous one ended', registers });
    this.failures = new Counter({ name: 'pipeops_tunnel_connect_failures_total', help: 'Failed tunnel dials by reason', labelNames: ['reason'], registers });
    // At 0 from the start: an alert's rate() sees the first failure (a series born at 1 has no increase).
    for (const reason of connectFailureReasons) this.failures.inc({ reason }, 0);
    const specs = streamMetricSpecs('Inbound streams');
    this.streamsActive = new Gauge({ ...specs.active, registers });
    this.streamsTotal = new Counter({ ...specs.total, registers });
    this.streamsOpened = new Counter({ ...specs.opened, registers });
    this.streams = new StreamAccounting<StreamKindLabel>({ opened: this.streamsOpened, active: this.streamsActive, total: this.streamsTotal }, STREAM_KINDS, [
      'unknown',
    ]);
    const self = this;
    this.rtt = new Gauge({
      name: 'pipeops_tunnel_session_rtt_seconds',
      help: 'Last measured round-trip time of the tunnel session',
      registers,
      collect() {
        const ms = self.#rttMs?.();
        if (ms !== undefined) this.set(ms / 1000);
      },
    });
    const cumulative = (name: string, help: string, pick: (c: SessionCounters) => [number, number]): void => {
      // Each counter remembers what it already reported and adds the delta.
      let reported: [number, number] = [0, 0];
      const c = new Counter({
        name,
        help,
        labelNames: ['direction'],
        registers,
        collect() {
          const [inNow, outNow] = pick(self.#totals());
          if (inNow > reported[0]) this.inc({ direction: 'in' }, inNow - reported[0]);
          if (outNow > reported[1]) this.inc({ direction: 'out' }, outNow - reported[1]);
          reported = [Math.max(inNow, reported[0]), Math.max(outNow, reported[1])];
        },
      });
      // Make both series visible from the first scrape.
      c.inc({ direction: 'in' }, 0);
      c.inc({ direction: 'out' }, 0);
    };
    cumulative('pipeops_tunnel_bytes_total', 'Tunnel bytes by direction (mux payload and headers)', (c) => [c.bytesIn, c.bytesOut]);
    cumulative('pipeops_tunnel_frames_total', 'yamux frames by direction', (c) => [c.framesIn, c.framesOut]);
    cumulative('pipeops_tunnel_resets_total', 'yamux stream resets by direction', (c) => [c.resetsIn, c.resetsOut]);
    new Gauge({
      name: 'pipeops_tunnel_sessions',
      help: 'Tunnel sessions currently established (0 or 1)',
      registers,
      collect() {
        this.set(self.#live === undefined ? 0 : 1);
      },
    });
    for (const s of agentStates) this.state.set({ state: s }, s === 'idle' ? 1 : 0);
  }

  #totals(): SessionCounters {
    const live = this.#live?.() ?? zero();
    const t = this.#closedTotals;
    return {
      bytesIn: t.bytesIn + live.bytesIn,
      bytesOut: t.bytesOut + live.bytesOut,
      framesIn: t.framesIn + live.framesIn,
      framesOut: t.framesOut + live.framesOut,
      resetsIn: t.resetsIn + live.resetsIn,
      resetsOut: t.resetsOut + live.resetsOut,
    };
  }

  /** Current cumulative totals across all sessions (for status reports). */
  totals(): SessionCounters {
    return this.#totals();
  }

  setState(state: AgentState): void {
    for (const s of agentStates) this.state.set({ state: s }, s === state ? 1 : 0);
  }

  /** Start reading counters from a live session. */
  attachSession(read: () => SessionCounters, rttMs: () => number | undefined): void {
    this.#live = read;
    this.#rttMs = rttMs;
  }

  /** The session ended: fold its final counters into the carried totals. */
  detachSession(): void {
    const last = this.#live?.();
    this.#live = undefined;
    this.#rttMs = undefined;
    if (last === undefined) return;
    const t = this.#closedTotals;
    this.#closedTotals = {
      bytesIn: t.bytesIn + last.bytesIn,
      bytesOut: t.bytesOut + last.bytesOut,
      framesIn: t.framesIn + last.framesIn,
      framesOut: t.framesOut + last.framesOut,
      resetsIn: t.resetsIn + last.resetsIn,
      resetsOut: t.resetsOut + last.resetsOut,
    };
  }
}
