// What a sample costs: the CPU time (user + system, every thread) each
// process of a side used while the sample ran, per GiB moved or per request.
// Wall-clock figures on a shared 2-core machine move with whatever else runs
// there; CPU time per unit of work much less, and it says where the time goes.
import { cpuSnapshot, cpuSplitSince } from './proc-stats.ts';
import { summarize } from './stats.ts';

/** The sides of a comparison, in the order of the report's columns. */
export type Side = 'tunnel' | 'direct' | 'peer';

/** `cpu_s_per_gib`: CPU seconds per GiB (2^30 bytes) moved; `cpu_us_per_request`: CPU microseconds per request. */
export type CostUnit = 'cpu_s_per_gib' | 'cpu_us_per_request';

/** The processes a sample may be charged for, in the order of the report's columns. */
export const COST_ROLES = ['runner', 'gateway', 'agent', 'upstream', 'chiselServer', 'chiselClient'] as const;
export type CostRole = (typeof COST_ROLES)[number];

/** The pid of each process of a side (the runner is the bench process, `process.pid`, unless it is a child of its own). */
export type Processes = Partial<Record<CostRole, number>>;

/** A figure for each process that has one. */
export type ByRole = Partial<Record<CostRole, number>>;

/**
 * CPU by process, in the report's unit, and `total`, the median of each
 * sample's sum (not the sum of the medians); `otherThreads`: of that, what
 * each process spent outside its main thread (V8's GC and compiler threads,
 * libuv's pool), by the same medians.
 */
export type SideCost = ByRole & { total: number; otherThreads: ByRole & { total: number } };

/** How a scenario's samples are charged. */
export interface CostSpec {
  unit: CostUnit;
  /** The work of one sample in the unit's denominator: GiB moved, or requests made. */
  perSample: number;
  /** The processes of `side`, looked up before each sample (a restarted process has a new pid). */
  processes(side: Side): Processes;
}

/** One scenario's cost in the JSON report: medians over the rounds, per side; null for a side that did not run. */
export interface CostReport {
  scenario: string;
  unit: CostUnit;
  tunnel: SideCost | null;
  direct: SideCost | null;
  peer: SideCost | null;
}

/** CPU seconds of each process during one sample (`all`), and of each one's main thread (`main`). */
export interface SampleCpu {
  all: ByRole;
  main: ByRole;
}

const PER_SECOND: Record<CostUnit, number> = { cpu_s_per_gib: 1, cpu_us_per_request: 1e6 };
export const COST_UNIT_TEXT: Record<CostUnit, string> = { cpu_s_per_gib: 'CPU s/GiB', cpu_us_per_request: 'CPU µs/req' };

/** Starts charging `processes` for a sample; the function returned ends the sample and gives each one's CPU seconds. */
export function startCpuMeter(processes: Processes): () => SampleCpu {
  const before = Object.entries(processes).map(([role, pid]) => [role, cpuSnapshot(pid)] as const);
  return () => {
    const sample: SampleCpu = { all: {}, main: {} };
    for (const [role, snapshot] of before) {
      const { seconds, mainSeconds } = cpuSplitSince(snapshot);
      sample.all[role as CostRole] = seconds;
      sample.main[role as CostRole] = mainSeconds;
    }
    return sample;
  };
}

/** The scenario's cost report from the CPU of every sample of each side. */
export function costReport(scenario: string, spec: CostSpec, samples: Record<Side, SampleCpu[]>): CostReport {
  const perUnit = (seconds: number): number => (seconds * PER_SECOND[spec.unit]) / spec.perSample;
  const sum = (byRole: ByRole): number => Object.values(byRole).reduce((a, b) => a + b, 0);
  const medians = (list: ByRole[]): ByRole & { total: number } => {
    const byRole: ByRole = {};
    for (const role of COST_ROLES) {
      const got = list.map((s) => s[role]).filter((v): v is number => v !== undefined);
      if (got.length > 0) byRole[role] = summarize(got.map(perUnit)).median;
    }
    return { ...byRole, total: summarize(list.map((s) => perUnit(sum(s)))).median };
  };
  const side = (list: SampleCpu[]): SideCost | null => {
    if (list.length === 0) return null;
    const others = list.map(({ all, main }) => {
      const byRole: ByRole = {};
      for (const [role, seconds] of Object.entries(all) as [CostRole, number][]) byRole[role] = Math.max(0, seconds - (main[role] ?? 0));
      return byRole;
    });
    return { ...medians(list.map((s) => s.all)), otherThreads: medians(others) };
  };
  return { scenario, unit: spec.unit, tunnel: side(samples.tunnel), direct: side(samples.direct), peer: side(samples.peer) };
}
