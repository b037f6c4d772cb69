// A campaign: one rig, many runs, each planned from (seed, run) alone, and
// the file-descriptor watch across them.
import { FAULT_CLASSES, type FaultClass } from './faults.ts';
import { LeakWatch } from './leak-watch.ts';
import { prng } from './prng.ts';
import { startRig, TARGETS, type Rig } from './rig.ts';
import { planRun, runOne, type RunReport } from './run-one.ts';
import { KINDS, type Kind } from './stream-kinds.ts';

/** Log lines of each process kept with the first failed run. */
const TAIL_LINES = 8;

export interface CampaignOptions {
  seed: number;
  /** How many runs (1 … runs), unless `only` is set. */
  runs: number;
  /** Run only this one (1-based), as it ran in the campaign. */
  only?: number;
  /** Quick mode: run r takes the r-th pair of the seeded shuffle of every kind × every fault class. */
  crossProduct?: boolean;
  /** Run r takes the r-th pair (cycling) of this list instead: a fixed selection, as in the harness's own test. */
  schedule?: ReadonlyArray<{ kind: Kind; fault: FaultClass }>;
  /** Share of relay freezes held until the keepalive gives up (the rest are short). Default 0.15. */
  heldFreezeShare?: number;
  /** Called after each run. */
  onReport?: (r: RunReport, rig: Rig) => void;
  /** Keep the processes' logs (printed path) even when every run passed. */
  keepLogs?: boolean;
}

/** Every kind × fault class, in an order shuffled by `seed`. */
export function crossProduct(seed: number): Array<{ kind: Kind; fault: FaultClass }> {
  const all = KINDS.flatMap((kind) => FAULT_CLASSES.map((fault) => ({ kind, fault })));
  const rnd = prng(seed ^ 0x51ed270b);
  for (let i = all.length - 1; i > 0; i--) {
    const j = rnd.int(0, i);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all;
}

export async function runCampaign(o: CampaignOptions): Promise<{ reports: RunReport[]; logDir: string; fdGrowth: Record<string, number> }> {
  const rig = await startRig({ keepLogs: true });
  const reports: RunReport[] = [];
  const schedule = o.schedule ?? (o.crossProduct === true ? crossProduct(o.seed) : undefined);
  const watch = new LeakWatch();
  const numbers = o.only !== undefined ? [o.only] : Array.from({ length: o.runs }, (_, i) => i + 1);
  try {
    for (const run of numbers) {
      const plan = planRun(o.seed, run, schedule?.[(run - 1) % schedule.length], o.heldFreezeShare);
      let report: RunReport;
      try {
        report = await runOne(rig, plan);
      } catch (err) {
        report = { plan, ending: 'error', bytes: 0, expectedBytes: 0, ms: 0, failures: ['harness'], why: [`harness: ${(err as Error).stack ?? String(err)}`] };
        reports.push(report);
        o.onReport?.(report, rig);
        break; // the rig itself is broken: later runs would only repeat this
      }
      for (const s of watch.check(rig)) {
        report.failures.push('leak');
        report.why.push(`${s.who} (start ${s.generation}) holds ${s.fds} fds, baseline ${s.baseline}`);
      }
      // The processes' last words, for the first failure only: what CI keeps of a run is the summary.
      if (report.failures.length > 0 && !reports.some((r) => r.tails !== undefined)) {
        report.tails = Object.fromEntries(TARGETS.map((t) => [t, rig.tail(t, TAIL_LINES)]));
      }
      reports.push(report);
      o.onReport?.(report, rig);
    }
  } finally {
    await rig.close();
  }
  return { reports, logDir: rig.dir, fdGrowth: Object.fromEntries(watch.maxGrowth) };
}
