// The stream accounting the agent and the gateway share: every stream is
// counted opened, then closed exactly once with its result, or refused
// alone (opened and closed at once, never active), so that
//   pipeops_tunnel_streams_opened_total = pipeops_tunnel_streams_total (every result) + pipeops_tunnel_streams_active
// holds per kind at every scrape (the soak asserts it; the alert
// PipeopsTunnelStreamAccountingBroken watches it). Each side owns its metric
// objects (prom-client, on its registry); this class is the one place that
// moves them together.

import { beforeRead, type AccountingCounter, type Labels } from './deferred-counter.ts';

/** `result` label values of `pipeops_tunnel_streams_total` (fixed set). */
export const STREAM_RESULTS = ['ok', 'reset', 'error', 'refused'] as const;
export type StreamResult = (typeof STREAM_RESULTS)[number];

/** What of a prom-client Gauge this needs. */
export interface AccountingGauge<L extends string> extends AccountingCounter<L> {
  dec(labels: Labels<L>, value?: number): void;
  set(labels: Labels<L>, value: number): void;
}

/**
 * Name, help text and labels of the three stream metrics, for the side's own
 * prom-client objects (`noun`: what the side calls its streams, e.g.
 * `Inbound streams`).
 */
export function streamMetricSpecs(noun: string) {
  return {
    active: { name: 'pipeops_tunnel_streams_active', help: `${noun} open, by kind`, labelNames: ['kind'] as const },
    total: { name: 'pipeops_tunnel_streams_total', help: `${noun} finished, by kind and result`, labelNames: ['kind', 'result'] as const },
    opened: {
      name: 'pipeops_tunnel_streams_opened_total',
      help: `${noun} opened, by kind (refused ones included): opened = streams_total + streams_active for every kind`,
      labelNames: ['kind'] as const,
    },
  };
}

/** What happened to one kind's streams since the last scrape. */
interface Pending {
  opened: number;
  closed: number;
  /** Finished, by result (in {@link STREAM_RESULTS} order). */
  total: number[];
}

/**
 * The counts move in plain numbers as streams come and go, and reach the
 * three metrics when they are read (their `collect` hook, at every scrape):
 * a labelled prom-client `inc` hashes its labels and checks them each time,
 * four times per stream on each side.
 */
export class StreamAccounting<K extends string> {
  readonly #opened: AccountingCounter<'kind'>;
  readonly #active: AccountingGauge<'kind'>;
  readonly #total: AccountingCounter<'kind' | 'result'>;
  readonly #pending = new Map<string, Pending>();

  /**
   * Every series of `kinds` starts at 0 (an alert's rate() sees the first
   * increase); `refusedOnly` kinds (e.g. `unknown`: a stream refused before
   * its kind was known) only ever get `opened` and `refused`. Each metric's
   * `collect` hook is wrapped to bring the counts in first.
   */
  constructor(
    metrics: { opened: AccountingCounter<'kind'>; active: AccountingGauge<'kind'>; total: AccountingCounter<'kind' | 'result'> },
    kinds: readonly K[],
    refusedOnly: readonly K[] = [],
  ) {
    this.#opened = metrics.opened;
    this.#active = metrics.active;
    this.#total = metrics.total;
    for (const kind of kinds) {
      this.#active.set({ kind }, 0);
      this.#opened.inc({ kind }, 0);
      for (const result of STREAM_RESULTS) this.#total.inc({ kind, result }, 0);
    }
    for (const kind of refusedOnly) {
      this.#opened.inc({ kind }, 0);
      this.#total.inc({ kind, result: 'refused' }, 0);
    }
    const flush = (): void => this.flush();
    for (const m of [this.#opened, this.#active, this.#total]) beforeRead(m, flush);
  }

  /** A stream is being served: counted opened and active. */
  opened(kind: K): void {
    this.#of(kind).opened++;
  }

  /** A stream of {@link opened} is over: no longer active, counted with its result. Once per stream. */
  closed(kind: K, result: Exclude<StreamResult, 'refused'>): void {
    const p = this.#of(kind);
    p.closed++;
    p.total[STREAM_RESULTS.indexOf(result)]!++;
  }

  /** A stream refused as it arrived: opened and closed at once, never active. */
  refused(kind: K): void {
    const p = this.#of(kind);
    p.opened++;
    p.closed++;
    p.total[REFUSED]!++;
  }

  /** Brings the counts into the metrics (every scrape does, before reading them). */
  flush(): void {
    for (const [kind, p] of this.#pending) {
      if (p.opened > 0) this.#opened.inc({ kind }, p.opened);
      if (p.opened !== p.closed) this.#active.inc({ kind }, p.opened - p.closed);
      for (let i = 0; i < STREAM_RESULTS.length; i++) {
        const n = p.total[i]!;
        if (n > 0) this.#total.inc({ kind, result: STREAM_RESULTS[i]! }, n);
        p.total[i] = 0;
      }
      p.opened = 0;
      p.closed = 0;
    }
  }

  #of(kind: string): Pending {
    let p = this.#pending.get(kind);
    if (p === undefined) {
      p = { opened: 0, closed: 0, total: STREAM_RESULTS.map(() => 0) };
      this.#pending.set(kind, p);
    }
    return p;
  }
}

const REFUSED = STREAM_RESULTS.indexOf('refused');
