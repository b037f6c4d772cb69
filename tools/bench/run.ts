// `pnpm bench [--quick] [--json FILE] [--rounds N] [--only PATTERN[,PATTERN…]] [--profile DIR] [--list]`
//
// The gateway, the agent and the proxy run from the command's bundle, as the
// package and the image ship them (tools/bundle.ts); with --profile from the
// workspace's sources instead, so that the profiles carry names.
//
// Runs every scenario in ./scenarios, each next to its baseline (and the
// reference peer where there is one) in the same run, alternating the sides
// (ABBA) so drift on a shared machine hits all of them; prints a table,
// optionally writes the JSON summary. Targets are reported, not asserted:
// the figures of a shared 2-core machine are evidence, not a test.
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { scenarios } from './scenarios/index.ts';
import { LARGE_WINDOW_BYTES } from './scenarios/mux-throughput.ts';
import type { BenchOptions, Figures, Scenario } from './scenarios/types.ts';
import { startSink, type SinkProcess } from './lib/sink-process.ts';
import { runFromBundle } from '@pipeops/tunnel-e2e/harness/paths';
import { profileInto, startFullPath, type FullPath } from './lib/full-path.ts';
import { summarize, type Summary } from './lib/stats.ts';
import { costReport, startCpuMeter, type SampleCpu, type Side } from './lib/cost.ts';
import { formatTable, machineInfo, metricReport, type MetricReport, type Report } from './lib/report.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    rounds: { type: 'string' },
    only: { type: 'string' },
    list: { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});

const MiB = 1024 * 1024;
const quick = values.quick;
const rounds = values.rounds !== undefined ? Number(values.rounds) : quick ? 3 : 5;
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);

if (values.list) {
  for (const s of scenarios) process.stdout.write(`${s.name}: ${s.metrics.map((m) => m.name).join(', ')}\n`);
  process.exit(0);
}
if (values.profile !== undefined) profileInto(resolve(values.profile));
else runFromBundle();
const only = values.only?.split(',').map((o) => new RegExp(o));
const selected = scenarios.filter((s) => only === undefined || only.some((o) => o.test(s.name)));
if (selected.length === 0) throw new Error(`--only ${values.only}: no scenario matches (see --list)`);

let sink: Promise<SinkProcess> | undefined;
let shared: Promise<FullPath> | undefined;
const options: BenchOptions = {
  quick,
  rounds,
  totalBytes: (quick ? 64 : 256) * MiB,
  sink: () => (sink ??= startSink(LARGE_WINDOW_BYTES)),
  fullPath: () => (shared ??= startFullPath({ peer: true })),
  startFullPath,
};

const results: MetricReport[] = [];
const started = Date.now();
const machine = machineInfo(quick, rounds, values.profile === undefined ? 'bundle' : 'sources'); // load average before the run's own processes
try {
  for (const scenario of selected) {
    process.stderr.write(`${scenario.name} …`);
    const t0 = Date.now();
    results.push(...(await runScenario(scenario, options)));
    process.stderr.write(` ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }
} finally {
  await (await shared?.catch(() => undefined))?.close();
  await (await sink?.catch(() => undefined))?.close();
}

const report: Report = { machine, scenarios: results };
process.stdout.write(`${formatTable(report)}\n\ntotal ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
if (values.json !== undefined) {
  await writeFile(values.json, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`JSON written to ${values.json}\n`);
}

async function runScenario(scenario: Scenario, o: BenchOptions): Promise<MetricReport[]> {
  const rig = await scenario.setup(o);
  const sides = { tunnel: [] as Figures[], direct: [] as Figures[], peer: [] as Figures[] };
  const cpu: Record<Side, SampleCpu[]> = { tunnel: [], direct: [], peer: [] };
  const n = scenario.rounds?.(o) ?? o.rounds;
  try {
    for (let round = 0; round < n; round++) {
      // ABBA: even rounds tunnel first, odd rounds tunnel last.
      const order = (['tunnel', 'direct', 'peer'] as const).filter((side) => rig[side] !== null);
      if (round % 2 === 1) order.reverse();
      for (const side of order) {
        const meter = rig.cost && startCpuMeter(rig.cost.processes(side));
        sides[side].push(await rig[side]!());
        if (meter) cpu[side].push(meter());
      }
    }
  } finally {
    await rig.close();
  }
  const cost = rig.cost ? costReport(scenario.name, rig.cost, cpu) : null;
  const pick = (samples: Figures[], name: string): Summary | null => {
    const got = samples.map((f) => f[name]).filter((v): v is number => v !== undefined);
    return got.length === 0 ? null : summarize(got);
  };
  return scenario.metrics.map((m) => {
    const tunnel = pick(sides.tunnel, m.name);
    if (tunnel === null) throw new Error(`${scenario.name}: no tunnel figure for ${m.name}`);
    return metricReport(m, tunnel, pick(sides.direct, m.name), pick(sides.peer, m.name), cost);
  });
}
