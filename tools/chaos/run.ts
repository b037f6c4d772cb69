// `pnpm chaos`: the chaos harness of pipeops-tunnel. Real gateway, agent and
// API-server processes (src/rig.ts), the agent dialing through a relay that
// can cut, freeze or throttle the link (src/fault-relay.ts), and runs of
// every stream kind with a fault at a random byte offset (src/run-one.ts
// says what each run asserts and why).
//
//   pnpm chaos                       1,000 random runs
//   pnpm chaos --quick               every kind × every fault class once (70 runs), for CI
//   pnpm chaos --runs N              N random runs (with --quick: N runs cycling the cross product)
//   pnpm chaos --seed S              the campaign's seed (default: random, printed)
//   pnpm chaos --seed S --run N      replays run N of that campaign alone (add --quick if it was one)
//   pnpm chaos --json FILE           every run and the summary as JSON
//   pnpm chaos --keep-logs           keep the processes' logs even when every run passed
//
// One line per run, a summary at the end; exit 1 if any run failed.
import { randomInt } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { onInterrupt, stopAll } from '@pipeops/tunnel-e2e/harness/proc';
import { runCampaign } from './src/campaign.ts';
import { FAULT_CLASSES, type FaultSpec } from './src/faults.ts';
import type { RunReport } from './src/run-one.ts';
import { KINDS, type StreamSpec } from './src/stream-kinds.ts';
import { summarize, summaryText } from './src/summary.ts';

const FULL_RUNS = 1_000;

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seed: { type: 'string' },
    run: { type: 'string' },
    json: { type: 'string' },
    'keep-logs': { type: 'boolean', default: false },
  },
});
const int = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name}: a non-negative integer, got ${v}`);
  return n;
};
const seed = int('seed', values.seed) ?? randomInt(1, 2 ** 31);
const quick = values.quick === true;
const runs = int('runs', values.runs) ?? (quick ? KINDS.length * FAULT_CLASSES.length : FULL_RUNS);
const only = int('run', values.run);
const replay = (run: number): string => `pnpm chaos${quick ? ' --quick' : ''} --seed ${seed} --run ${run}`;

const kib = (n: number): string => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)}MiB` : n >= 1024 ? `${(n / 1024).toFixed(0)}KiB` : `${n}B`);

function faultLabel(f: FaultSpec): string {
  if (f.class.startsWith('stop-')) return `${f.class} ${f.durationMs}ms`;
  if (f.class === 'relay-freeze') return `${f.class} ${f.held ? 'held' : `${f.durationMs}ms`}`;
  if (f.class === 'relay-throttle') return `${f.class} ${kib(f.bytesPerSecond)}/s ${f.durationMs}ms`;
  if (f.class === 'relay-cut') return `${f.class} ${f.cutHow === 'reset' ? 'RST' : 'FIN'}`;
  return f.class;
}

function sizeLabel(s: StreamSpec): string {
  if (s.kind === 'watch') return `${s.count} events`;
  if (s.kind === 'logs') return `${s.count} lines`;
  if (s.transport === 'websocket') return `ws ${s.count} msgs`;
  if (s.transport === 'spdy') return `spdy ${kib(s.count)}`;
  return kib(s.count);
}

function line(r: RunReport, total: number): string {
  const p = r.plan;
  const head = `run ${String(p.run).padStart(String(total).length)}/${total} ${p.stream.kind.padEnd(11)} ${sizeLabel(p.stream).padEnd(15)} ${faultLabel(p.fault).padEnd(30)} @${kib(p.offset).padEnd(8)}`;
  const ending = r.ending === 'error' ? `error after ${r.errorAfterMs ?? '?'} ms` : r.ending;
  const rec = r.recoveryMs === undefined ? '' : ` recovery ${r.recoveryMs} ms`;
  const verdict = r.failures.length === 0 ? 'ok' : `FAIL ${[...new Set(r.failures)].join(',')}`;
  return `${head} ${ending.padEnd(22)}${rec.padEnd(20)} ${r.ms} ms  ${verdict}`;
}

console.log(`chaos: seed ${seed}, ${only !== undefined ? `run ${only} only` : `${runs} runs`}${quick ? ' (quick: kind × fault cross product)' : ''}`);
// On Ctrl-C (or SIGTERM) the processes go too, stopped ones included (SIGKILL after 1 s).
onInterrupt(() => stopAll(1_000));
const t0 = Date.now();
const total = only ?? runs;
const { reports, logDir, fdGrowth } = await runCampaign({
  seed,
  runs,
  ...(only !== undefined ? { only } : {}),
  crossProduct: quick,
  onReport: (r, rig) => {
    console.log(line(r, total));
    if (r.failures.length > 0) {
      console.log(`  seed ${seed} run ${r.plan.run} — replay: ${replay(r.plan.run)}`);
      for (const w of r.why) console.log(`  ${w}`);
      if (r.detail !== undefined) console.log(`  runner saw: ${r.detail}`);
      console.log(`  logs: ${rig.dir}/logs`);
    }
  },
});
const summary = summarize(reports, seed, Date.now() - t0);
console.log('');
console.log(summaryText(summary, reports));
console.log(`fd growth over baseline (max, per process): ${JSON.stringify(fdGrowth)}`);
if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify({ summary, fdGrowth, reports }, null, 2)}\n`);
const failed = summary.failedRuns.length > 0;
if (failed || values['keep-logs'] === true) console.log(`logs kept in ${logDir}/logs`);
else rmSync(logDir, { recursive: true, force: true });
process.exitCode = failed ? 1 : 0;
