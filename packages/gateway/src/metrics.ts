import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import type { SessionCounters } from '@pipeops/tunnel-mux';
import { connectFailureReasons, DeferredCounter, EVENT_LOOP_SAMPLE_MS, StreamAccounting, streamMetricSpecs } from '@pipeops/tunnel-protocol';
/** Results of `pipeops_tunnel_streams_total` (the protocol's fixed set, shared with the agent). */
export type { StreamResult } from '@pipeops/tunnel-protocol';
/** Stream kinds used as labels (fixed set; anything else is counted as `other`). */
export type StreamKindLabel = 'http' | 'ping' | 'control' | 'other';
const streamKindLabels: readonly StreamKindLabel[] = ['http', 'ping', 'control', 'other'];

/** Cumulative per-session counters read from the mux session's `stats`. */
export type { SessionCounters } from '@pipeops/tunnel-mux';

/** The gateway's metrics, registered on the injected registry only. Labels come from small fixed sets. */
export class GatewayMetrics {
  readonly sessions: Gauge;
  readonly connects: Counter;
  readonly connectFailures: Counter<'reason'>;
  readonly streamsActive: Gauge<'kind'>;
  readonly streamsTotal: Counter<'kind' | 'result'>;
  readonly streamsOpened: Counter<'kind'>;
  /** Every data stream goes through it: opened, then closed once, or refused (see the protocol's stream-accounting.ts). */
  readonly streams: StreamAccounting<StreamKindLabel>;
  readonly bytes: Counter<'direction'>;
  readonly frames: Counter<'direction'>;
  readonly resets: Counter<'direction'>;
  readonly rtt: Histogram;
  readonly tokenReloads: Counter<'result'>;
  /** Runner requests (all routes), by status class (`2xx`…`5xx`, `1xx` for upgrades); held until a scrape reads it: add(code, { code }). */
  readonly runnerRequests: DeferredCounter<'code'>;
  /** Open runner mux sessions (`GET /ws/runner`). */
  readonly runnerSessions: Gauge;
  /** Requests refused for a runner's limits, by runner id (from the tokens file: a bounded set) and limit. */
  readonly runnerLimited: Counter<'runner' | 'limit'>;
  /** Bytes of runner requests, by runner id and direction (`in`: from the runner); held until a scrape reads it: add(`${runner} ${direction}`, { runner, direction }, bytes). */
  readonly runnerBytes: DeferredCounter<'runner' | 'direction'>;
  /** Requests open per runner id (collected from the limiter at scrape time). */
  readonly runnerStreamsActive: Gauge<'runner'>;
  #openByRunner: () => Iterable<[string, number]> = () => [];
  readonly #sources = new Map<object, { read: () => SessionCounters; last: SessionCounters }>();

  constructor(registry: Registry, opts: { collectDefaultMetrics: boolean }) {
    const registers = [registry];
    this.sessions = new Gauge({ name: 'pipeops_tunnel_sessions', help: 'Agents connected to the gateway', registers });
    this.connects = new Counter({ name: 'pipeops_tunnel_connects_total', help: 'Agent sessions established', registers });
    this.connectFailures = new Counter({
      name: 'pipeops_tunnel_connect_failures_total',
      help: 'Agent connections refused or failed, by reason',
      labelNames: ['reason'],
      registers,
    });
    const specs = streamMetricSpecs('Data streams');
    this.streamsActive = new Gauge({ ...specs.active, registers });
    this.streamsTotal = new Counter({ ...specs.total, registers });
    this.streamsOpened = new Counter({ ...specs.opened, registers });
    const pull = (): void => this.#pull();
    this.bytes = new Counter({
      name: 'pipeops_tunnel_bytes_total',
      help: 'Bytes on agent sessions, by direction',
      labelNames: ['direction'],
      registers,
      collect: pull,
    });
    this.frames = new Counter({
      name: 'pipeops_tunnel_frames_total',
      help: 'Mux frames on agent sessions, by direction',
      labelNames: ['direction'],
      registers,
      collect: pull,
    });
    this.resets = new Counter({
      name: 'pipeops_tunnel_resets_total',
      help: 'Mux stream resets on agent sessions, by direction',
      labelNames: ['direction'],
      registers,
      collect: pull,
    });
    this.rtt = new Histogram({
      name: 'pipeops_tunnel_session_rtt_seconds',
      help: 'Agent session round-trip time (mux ping)',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.tokenReloads = new Counter({ name: 'pipeops_tunnel_token_reloads_total', help: 'Tokens file reloads, by result', labelNames: ['result'], registers });
    this.runnerRequests = new DeferredCounter<'code'>(
      new Counter({
        name: 'pipeops_tunnel_runner_requests_total',
        help: 'Runner requests relayed or refused by the gateway, by status class',
        labelNames: ['code'],
        registers,
      }),
    );
    this.runnerSessions = new Gauge({ name: 'pipeops_tunnel_runner_sessions', help: 'Open runner mux sessions (GET /ws/runner)', registers });
    this.runnerLimited = new Counter({
      name: 'pipeops_tunnel_runner_limited_total',
      help: 'Runner requests refused with 429, by runner and limit (stream_limit, rate_limit)',
      labelNames: ['runner', 'limit'],
      registers,
    });
    this.runnerBytes = new DeferredCounter<'runner' | 'direction'>(
      new Counter({
        name: 'pipeops_tunnel_runner_bytes_total',
        help: 'Bytes of finished runner requests, by runner and direction',
        labelNames: ['runner', 'direction'],
        registers,
      }),
    );
    const openByRunner = (): Iterable<[string, number]> => this.#openByRunner();
    this.runnerStreamsActive = new Gauge({
      name: 'pipeops_tunnel_runner_streams_active',
      help: 'Runner requests open, by runner',
      labelNames: ['runner'],
      registers,
      collect() {
        this.reset();
        for (const [runner, n] of openByRunner()) this.set({ runner }, n);
      },
    });
    for (const d of ['in', 'out']) {
      this.bytes.inc({ direction: d }, 0);
      this.frames.inc({ direction: d }, 0);
      this.resets.inc({ direction: d }, 0);
    }
    // Fixed label sets at 0 from the start: an alert's rate() or increase() sees the first event (a series born at 1 has none).
    for (const reason of connectFailureReasons) this.connectFailures.inc({ reason }, 0);
    for (const result of ['ok', 'error']) this.tokenReloads.inc({ result }, 0);
    this.streams = new StreamAccounting<StreamKindLabel>(
      { opened: this.streamsOpened, active: this.streamsActive, total: this.streamsTotal },
      streamKindLabels,
    );
    if (opts.collectDefaultMetrics) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /** Where `pipeops_tunnel_runner_streams_active` reads its numbers at scrape time. */
  countOpenStreams(source: () => Iterable<[string, number]>): void {
    this.#openByRunner = source;
  }

  /** Starts counting a session's cumulative stats (pulled at scrape time). */
  track(key: object, read: () => SessionCounters): void {
    this.#sources.set(key, { read, last: { bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0, resetsIn: 0, resetsOut: 0 } });
  }

  /** Takes a session's last numbers and stops tracking it. */
  untrack(key: object): void {
    const s = this.#sources.get(key);
    if (s) this.#pullOne(s);
    this.#sources.delete(key);
  }

  #pull(): void {
    for (const s of this.#sources.values()) this.#pullOne(s);
  }

  #pullOne(s: { read: () => SessionCounters; last: SessionCounters }): void {
    let now: SessionCounters;
    try {
      now = s.read();
    } catch {
      return;
    }
    const add = (c: Counter<'direction'>, direction: string, a: number, b: number): void => {
      if (a > b) c.inc({ direction }, a - b);
    };
    add(this.bytes, 'in', now.bytesIn, s.last.bytesIn);
    add(this.bytes, 'out', now.bytesOut, s.last.bytesOut);
    add(this.frames, 'in', now.framesIn, s.last.framesIn);
    add(this.frames, 'out', now.framesOut, s.last.framesOut);
    add(this.resets, 'in', now.resetsIn, s.last.resetsIn);
    add(this.resets, 'out', now.resetsOut, s.last.resetsOut);
    s.last = { ...now };
  }
}

/** Status class label of `pipeops_tunnel_runner_requests_total` (fixed set). */
export function statusClass(status: number): '1xx' | '2xx' | '3xx' | '4xx' | '5xx' {
  if (status < 200) return '1xx';
  if (status < 300) return '2xx';
  if (status < 400) return '3xx';
  if (status < 500) return '4xx';
  return '5xx';
}

/** Maps a preamble kind to its label. */
export function kindLabel(kind: string): StreamKindLabel {
  return kind === 'http' || kind === 'ping' || kind === 'control' ? kind : 'other';
}
