// The rounds of a paired comparison (../pair.ts): two rigs, the code at a
// base commit and the code here, measured in turns within one run, so that
// what drifts on a shared machine (its load, a noisy neighbour, the CPU's
// clock) falls on both alike. Full runs of `pnpm bench` on different days
// differ by 5–15 % on every path, direct and chisel included; a change
// worth 5 % only shows side by side.
import { summarize, type Summary } from './stats.ts';

/** Which rig a round measures. */
export type PairSide = 'base' | 'head';

/** One round: the rig it measures, and whether it counts (the first round of each rig warms it and is dropped). */
export interface PairRound {
  side: PairSide;
  counted: boolean;
}

/**
 * The order of the rounds: one uncounted round of each rig, then `rounds`
 * blocks of base, head, head, base (ABBA: a drift during a block costs
 * both sides the same). Each side gets 2 × `rounds` counted rounds.
 */
export function pairSchedule(rounds: number): PairRound[] {
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds must be a whole number of at least 1, not ${rounds}`);
  const out: PairRound[] = [
    { side: 'base', counted: false },
    { side: 'head', counted: false },
  ];
  for (let i = 0; i < rounds; i++) for (const side of ['base', 'head', 'head', 'base'] as const) out.push({ side, counted: true });
  return out;
}

/** The samples of the counted rounds: per side, per metric, in round order. */
export type PairSamples = Record<PairSide, Map<string, number[]>>;

export function emptyPairSamples(): PairSamples {
  return { base: new Map(), head: new Map() };
}

/** Adds the figures one round measured (uncounted rounds are dropped). */
export function addRound(samples: PairSamples, round: PairRound, figures: Record<string, number>): void {
  if (!round.counted) return;
  for (const [metric, value] of Object.entries(figures)) {
    const list = samples[round.side].get(metric) ?? [];
    list.push(value);
    samples[round.side].set(metric, list);
  }
}

/** One metric of the comparison: each side's median over its rounds, and head's change against base. */
export interface PairRow {
  metric: string;
  base: Summary;
  head: Summary;
  /** head median ÷ base median − 1 (−0.05: 5 % lower). */
  change: number;
  /** Rounds where head was below base, of the pairs of rounds in the same ABBA block. */
  headLower: number;
  pairs: number;
}

/**
 * The rows of the comparison, in the order the metrics were first measured.
 * Within each ABBA block the two rounds of a side are paired with the other
 * side's in order, so `headLower` of `pairs` tells whether a change of the
 * medians is a change of most rounds or of a few.
 */
export function pairRows(samples: PairSamples): PairRow[] {
  const rows: PairRow[] = [];
  for (const [metric, base] of samples.base) {
    const head = samples.head.get(metric);
    if (head === undefined || head.length === 0 || base.length === 0) continue;
    const b = summarize(base);
    const h = summarize(head);
    const pairs = Math.min(base.length, head.length);
    let headLower = 0;
    for (let i = 0; i < pairs; i++) if (head[i]! < base[i]!) headLower++;
    rows.push({ metric, base: b, head: h, change: b.median === 0 ? 0 : h.median / b.median - 1, headLower, pairs });
  }
  return rows;
}

/** The comparison as a text table: metric, base and head medians (each round's figure after them), change. */
export function formatPairRows(rows: readonly PairRow[], baseName: string, headName: string): string {
  const n = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  const lines = [`metric       ${baseName.padEnd(12)} ${headName.padEnd(12)} change   head lower   rounds (base | head)`];
  for (const r of rows) {
    const change = `${r.change >= 0 ? '+' : ''}${(r.change * 100).toFixed(1)} %`;
    lines.push(
      `${r.metric.padEnd(12)} ${n(r.base.median).padEnd(12)} ${n(r.head.median).padEnd(12)} ${change.padEnd(8)} ${`${r.headLower} of ${r.pairs}`.padEnd(12)} ${r.base.samples.map(n).join(' ')} | ${r.head.samples.map(n).join(' ')}`,
    );
  }
  return lines.join('\n');
}
