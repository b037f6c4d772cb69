// Counting without prom-client on the hot path. A labelled prom-client
// `inc` hashes and checks its labels on every call (~0.5 µs and a few
// hundred bytes of garbage); a relay counts several times per request. The
// counts here move in plain numbers and reach the metric when it is read:
// prom-client calls a metric's `collect` hook at every scrape, before it
// reads the values.

/** Label values of one series. */
export type Labels<L extends string> = Partial<Record<L, string | number>>;

/** What of a prom-client Counter this needs: `inc`, and the scrape-time hook (`collect`, an own property). */
export interface AccountingCounter<L extends string> {
  inc(labels: Labels<L>, value?: number): void;
  collect?: (() => unknown) | undefined;
}

/** Runs `bring` before every read of `metric` (ahead of the metric's own `collect`, if it has one). */
export function beforeRead(metric: { collect?: (() => unknown) | undefined }, bring: () => void): void {
  const own = metric.collect;
  metric.collect =
    own === undefined
      ? bring
      : (): unknown => {
          bring();
          return own.call(metric);
        };
}

/** A labelled counter whose increments are held here until it is read (see the file comment). */
export class DeferredCounter<L extends string> {
  readonly #counter: AccountingCounter<L>;
  readonly #series = new Map<string, { labels: Labels<L>; n: number }>();

  constructor(counter: AccountingCounter<L>) {
    this.#counter = counter;
    beforeRead(counter, () => this.flush());
  }

  /** Adds `n` to the series `key` names (the same key for the same label values; `labels` is kept from its first use). */
  add(key: string, labels: Labels<L>, n = 1): void {
    const s = this.#series.get(key);
    if (s === undefined) this.#series.set(key, { labels, n });
    else s.n += n;
  }

  /** Brings the held increments into the counter (every read does first). */
  flush(): void {
    for (const s of this.#series.values()) {
      if (s.n === 0) continue;
      this.#counter.inc(s.labels, s.n);
      s.n = 0;
    }
  }
}
