// The end-of-campaign figures: runs by kind and fault, outcomes, time from
// fault to error, recovery times, and the failures by type.
import { FAULT_CLASSES } from './faults.ts';
import { QUIESCE_WITHIN_MS, type RunReport } from './run-one.ts';
import { quantile, timings } from './stats.ts';
import { KINDS } from './stream-kinds.ts';

export interface Summary {
  runs: number;
  seed: number;
  elapsedMs: number;
  byKind: Record<string, { runs: number; complete: number; error: number }>;
  byFault: Record<string, { runs: number; complete: number; error: number; errorAfterMs: number[]; recoveryMs: number[] }>;
  errorAfterMs: { median: number; p99: number; max: number };
  recoveryMs: { median: number; max: number };
  /** Time for everything to be closed after a run (the leak check's bound is QUIESCE_WITHIN_MS). */
  quiesceMs: { median: number; max: number };
  failures: { truncated: number; hang: number; lateError: number; spuriousError: number; noRecovery: number; leak: number; harness: number };
  failedRuns: number[];
}

export function summarize(reports: readonly RunReport[], seed: number, elapsedMs: number): Summary {
  const byKind: Summary['byKind'] = {};
  const byFault: Summary['byFault'] = {};
  for (const k of KINDS) byKind[k] = { runs: 0, complete: 0, error: 0 };
  for (const f of FAULT_CLASSES) byFault[f] = { runs: 0, complete: 0, error: 0, errorAfterMs: [], recoveryMs: [] };
  const count = (f: string): number => reports.filter((r) => r.failures.includes(f as never)).length;
  const errs: number[] = [];
  const recs: number[] = [];
  const quiet = reports.flatMap((r) => (r.quiesceMs === undefined ? [] : [r.quiesceMs]));
  for (const r of reports) {
    const k = byKind[r.plan.stream.kind]!;
    const f = byFault[r.plan.fault.class]!;
    k.runs++;
    f.runs++;
    if (r.ending === 'complete') {
      k.complete++;
      f.complete++;
    } else if (r.ending === 'error') {
      k.error++;
      f.error++;
    }
    if (r.errorAfterMs !== undefined) {
      f.errorAfterMs.push(r.errorAfterMs);
      errs.push(r.errorAfterMs);
    }
    if (r.recoveryMs !== undefined) {
      f.recoveryMs.push(r.recoveryMs);
      recs.push(r.recoveryMs);
    }
  }
  return {
    runs: reports.length,
    seed,
    elapsedMs,
    byKind,
    byFault,
    errorAfterMs: { median: quantile(errs, 0.5), p99: quantile(errs, 0.99), max: errs.length === 0 ? Number.NaN : Math.max(...errs) },
    recoveryMs: { median: quantile(recs, 0.5), max: recs.length === 0 ? Number.NaN : Math.max(...recs) },
    quiesceMs: { median: quantile(quiet, 0.5), max: quiet.length === 0 ? Number.NaN : Math.max(...quiet) },
    failures: {
      truncated: count('truncated'),
      hang: count('hang'),
      lateError: count('late-error'),
      spuriousError: count('spurious-error'),
      noRecovery: count('no-recovery'),
      leak: count('leak'),
      harness: count('harness'),
    },
    failedRuns: reports.filter((r) => r.failures.length > 0).map((r) => r.plan.run),
  };
}

/** How many failed runs the summary tells again, with their reasons. */
const FAILURES_RETOLD = 3;

const pad = (s: string | number, n: number): string => String(s).padEnd(n);
const padL = (s: string | number, n: number): string => String(s).padStart(n);

/** The summary as text tables. */
export function summaryText(s: Summary, reports: readonly RunReport[]): string {
  const lines: string[] = [];
  lines.push(`chaos: ${s.runs} runs, seed ${s.seed}, ${(s.elapsedMs / 1000).toFixed(0)} s`);
  lines.push('');
  lines.push(`${pad('runs: kind \\ fault', 18)}${FAULT_CLASSES.map((f) => padL(f.replace('relay-', ''), 15)).join('')}${padL('total', 8)}`);
  for (const k of KINDS) {
    const row = FAULT_CLASSES.map((f) => padL(reports.filter((r) => r.plan.stream.kind === k && r.plan.fault.class === f).length, 15)).join('');
    lines.push(`${pad(k, 18)}${row}${padL(s.byKind[k]!.runs, 8)}`);
  }
  lines.push('');
  lines.push(
    `${pad('fault', 16)}${padL('runs', 6)}${padL('complete', 10)}${padL('error', 7)}   ${pad('fault → error ms (median / p99 / max)', 40)}recovery ms (median / max)`,
  );
  for (const f of FAULT_CLASSES) {
    const b = s.byFault[f]!;
    const rec = b.recoveryMs.length === 0 ? '-' : `${quantile(b.recoveryMs, 0.5)} / ${Math.max(...b.recoveryMs)}`;
    lines.push(`${pad(f, 16)}${padL(b.runs, 6)}${padL(b.complete, 10)}${padL(b.error, 7)}   ${pad(timings(b.errorAfterMs), 40)}${rec}`);
  }
  lines.push('');
  lines.push(`fault → error, all: median ${s.errorAfterMs.median} ms, p99 ${s.errorAfterMs.p99} ms, max ${s.errorAfterMs.max} ms`);
  lines.push(`recovery, all: median ${s.recoveryMs.median} ms, max ${s.recoveryMs.max} ms`);
  lines.push(`everything closed after a run: median ${s.quiesceMs.median} ms, max ${s.quiesceMs.max} ms (bound ${QUIESCE_WITHIN_MS} ms)`);
  const f = s.failures;
  lines.push(
    `silent truncations ${f.truncated}, hangs ${f.hang + f.lateError} (no ending ${f.hang}, late error ${f.lateError}), spurious errors ${f.spuriousError}, ` +
      `no recovery ${f.noRecovery}, leaks ${f.leak}, harness errors ${f.harness}`,
  );
  if (s.failedRuns.length === 0) lines.push('PASS');
  else {
    // What the first failures were, here too: CI keeps the tail of the output, not the run lines.
    lines.push(`FAIL: runs ${s.failedRuns.join(', ')}`);
    for (const r of reports.filter((x) => x.failures.length > 0).slice(0, FAILURES_RETOLD)) {
      lines.push(`  run ${r.plan.run}: ${r.plan.stream.kind} under ${r.plan.fault.class}${r.plan.fault.held ? ' (held)' : ''}: ${r.failures.join(', ')}`);
      for (const w of r.why) lines.push(`    ${w}`);
      for (const [who, tail] of Object.entries(r.tails ?? {})) lines.push(`    ${who}'s last log lines:`, tail);
    }
  }
  return lines.join('\n');
}
