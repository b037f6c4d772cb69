import os from 'node:os';
import type { Summary } from './stats.ts';
import { COST_ROLES, COST_UNIT_TEXT, type CostReport, type CostRole, type SideCost } from './cost.ts';
import type { Metric, Target } from '../scenarios/types.ts';

/** What the JSON report says about the machine the figures come from. */
export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  node: string;
  platform: string;
  arch: string;
  totalMemoryBytes: number;
  /** 1, 5 and 15 min load average when the run started. */
  loadAverage: number[];
  date: string;
  quick: boolean;
  rounds: number;
  /** What the gateway, the agent and the proxy ran: the command's bundle as it ships, or the workspace's sources (`--profile`). */
  relays: 'bundle' | 'sources';
}

/** One row of the report: one metric, medians of each side, the target and whether it is met. */
export interface MetricReport {
  name: string;
  unit: string;
  description: string;
  /** Median of our tunnel's samples. */
  tunnel: number;
  /** Median of the baseline's samples (same client straight to the upstream, unless `baseline` says otherwise), or null. */
  direct: number | null;
  /** What `direct` is: `direct`, or the metric's own baseline (e.g. `alone`). */
  baseline: string;
  /** Median of the reference peer's samples (chisel), or null. */
  peer: number | null;
  target: Target | null;
  peer_target: Target | null;
  /** tunnel / direct, or null. */
  ratio: number | null;
  /** tunnel / peer, or null. */
  peer_ratio: number | null;
  /** Every target (direct and peer) met; null when there is no target or a figure it needs is missing. */
  met: boolean | null;
  detail: { tunnel: Summary; direct: Summary | null; peer: Summary | null };
  /** CPU per GiB or per request of the scenario's samples, per side and process (every metric of a scenario has the same); null when not measured. */
  cost: CostReport | null;
}

export interface Report {
  machine: MachineInfo;
  scenarios: MetricReport[];
}

export function machineInfo(quick: boolean, rounds: number, relays: MachineInfo['relays']): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: os.platform(),
    arch: os.arch(),
    totalMemoryBytes: os.totalmem(),
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    date: new Date().toISOString(),
    quick,
    rounds,
    relays,
  };
}

/** Whether `tunnel` meets `target` against `other` (direct or peer); null when `other` is needed and missing. */
export function meets(target: Target, tunnel: number, other: number | null): boolean | null {
  switch (target.kind) {
    case 'at_most':
      return tunnel <= target.value;
    case 'at_least':
      return tunnel >= target.value;
    case 'ratio_at_least':
      return other === null || other === 0 ? null : tunnel / other >= target.value;
    case 'ratio_at_most':
      return other === null || other === 0 ? null : tunnel / other <= target.value;
    case 'added_at_most':
      return other === null ? null : tunnel - other <= target.value;
  }
}

/** Builds a row from a metric, the samples of each side and the scenario's cost. */
export function metricReport(metric: Metric, tunnel: Summary, direct: Summary | null, peer: Summary | null, cost: CostReport | null): MetricReport {
  const results: Array<boolean | null> = [];
  if (metric.target !== null) results.push(meets(metric.target, tunnel.median, direct?.median ?? null));
  if (metric.peerTarget !== undefined) results.push(meets(metric.peerTarget, tunnel.median, peer?.median ?? null));
  return {
    name: metric.name,
    unit: metric.unit,
    description: metric.description,
    tunnel: tunnel.median,
    direct: direct?.median ?? null,
    peer: peer?.median ?? null,
    baseline: metric.baseline ?? 'direct',
    target: metric.target,
    peer_target: metric.peerTarget ?? null,
    ratio: direct !== null && direct.median !== 0 ? tunnel.median / direct.median : null,
    peer_ratio: peer !== null && peer.median !== 0 ? tunnel.median / peer.median : null,
    met: results.length === 0 || results.includes(null) ? null : results.every(Boolean),
    detail: { tunnel, direct, peer },
    cost,
  };
}

const fmt = (n: number): string => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));
const range = (s: Summary | null): string => (s === null ? '—' : s.samples.length === 1 ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`);

/** A target as text, e.g. `≥ 0.40× direct`, `≤ +0.3 direct`, `≤ 300`. */
export function targetText(t: Target | null, against: string): string {
  if (t === null) return '';
  switch (t.kind) {
    case 'ratio_at_least':
      return `≥ ${t.value.toFixed(2)}× ${against}`;
    case 'ratio_at_most':
      return `≤ ${t.value.toFixed(2)}× ${against}`;
    case 'added_at_most':
      return `≤ ${against} + ${t.value}`;
    case 'at_most':
      return `≤ ${t.value}`;
    case 'at_least':
      return `≥ ${t.value}`;
  }
}

/** The human-readable table. */
export function formatTable(report: Report): string {
  const m = report.machine;
  const head = [
    `machine: ${m.cpus} × ${m.cpuModel}, ${(m.totalMemoryBytes / 2 ** 30).toFixed(0)} GiB, ${m.platform}/${m.arch}, Node ${m.node}, load at start ${m.loadAverage.join(' ')}`,
    `${m.quick ? 'quick run, ' : ''}relays from the ${m.relays === 'bundle' ? "command's bundle" : "workspace's sources"}, rounds in ABBA order; median (min–max); MB = 10^6 bytes`,
    '',
  ];
  const rows = [['scenario', 'unit', 'tunnel', 'direct', 'peer (chisel)', '÷direct', '÷peer', 'target', 'met']];
  for (const s of report.scenarios) {
    rows.push([
      s.name,
      s.unit,
      range(s.detail.tunnel),
      range(s.detail.direct),
      range(s.detail.peer),
      s.ratio === null ? '—' : s.ratio.toFixed(2),
      s.peer_ratio === null ? '—' : s.peer_ratio.toFixed(2),
      [targetText(s.target, s.baseline), targetText(s.peer_target, 'peer')].filter(Boolean).join(', '),
      s.met === null ? '—' : s.met ? 'yes' : 'NO',
    ]);
  }
  const notes = report.scenarios.map((s) => `  ${s.name}: ${s.description}`);
  const costs = costRows(report.scenarios);
  const costTable =
    costs.length === 1
      ? []
      : [
          '',
          "cost: CPU time (user + system, every thread) per GiB moved or per request, median over the rounds; total: median of each sample's sum;",
          "  '… other threads': of that, what each process spent outside its main thread (Node: V8's GC and compiler threads, libuv's pool; chisel, in Go, runs on any thread)",
          ...columns(costs),
        ];
  return [...head, ...columns(rows), ...costTable, '', ...notes].join('\n');
}

const ROLE_TEXT: Record<CostRole, string> = {
  runner: 'runner',
  gateway: 'gateway',
  agent: 'agent',
  upstream: 'upstream',
  chiselServer: 'chisel server',
  chiselClient: 'chisel client',
};

/** The cost table's rows, header first: one row per side of each scenario that reports its cost. */
function costRows(metrics: MetricReport[]): string[][] {
  const rows = [['scenario', 'unit', 'side', ...COST_ROLES.map((r) => ROLE_TEXT[r]), 'total']];
  const seen = new Set<string>();
  for (const { cost } of metrics) {
    if (cost === null || seen.has(cost.scenario)) continue;
    seen.add(cost.scenario);
    for (const side of ['tunnel', 'direct', 'peer'] as const) {
      const c: SideCost | null = cost[side];
      if (c === null) continue;
      rows.push([cost.scenario, COST_UNIT_TEXT[cost.unit], side, ...COST_ROLES.map((r) => (c[r] === undefined ? '—' : fmt(c[r]))), fmt(c.total)]);
      const o = c.otherThreads;
      rows.push(['', '', `${side} other threads`, ...COST_ROLES.map((r) => (o[r] === undefined ? '—' : fmt(o[r]))), fmt(o.total)]);
    }
  }
  return rows;
}

/** Rows (header first) as aligned text columns under a rule. */
function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
}
