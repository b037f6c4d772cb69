// `pnpm bench [--quick] [--json FILE] [--rounds N] [--only SUBSTRING]`
//
// Runs every scenario in ./scenarios against a sink in a child process, each
// next to its baseline in the same run, alternating the two sides (ABBA) so
// drift on a shared machine hits both; prints a table, optionally writes JSON.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { scenarios } from './scenarios/index.ts';
import { LARGE_WINDOW_BYTES } from './scenarios/mux-throughput.ts';
import type { BenchOptions, Scenario } from './scenarios/types.ts';
import { startSink } from './lib/sink-process.ts';
import { summarize } from './lib/stats.ts';
import { formatTable, machineInfo } from './lib/report.ts';
import type { Report, ScenarioReport } from './lib/report.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    rounds: { type: 'string' },
    only: { type: 'string' },
  },
});

const MiB = 1024 * 1024;
const quick = values.quick;
const rounds = values.rounds !== undefined ? Number(values.rounds) : quick ? 3 : 5;
const totalBytes = (quick ? 64 : 256) * MiB;
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);

const selected = scenarios.filter((s) => values.only === undefined || s.name.includes(values.only));
const sink = await startSink(LARGE_WINDOW_BYTES);
const results: ScenarioReport[] = [];
try {
  const options: BenchOptions = { totalBytes, rounds, sink };
  for (const scenario of selected) {
    process.stderr.write(`${scenario.name} …`);
    results.push(await runScenario(scenario, options));
    process.stderr.write(' done\n');
  }
} finally {
  await sink.close();
}

const report: Report = { machine: machineInfo(quick, rounds, totalBytes), scenarios: results };
process.stdout.write(`${formatTable(report)}\n`);
if (values.json !== undefined) {
  await writeFile(values.json, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\nJSON written to ${values.json}\n`);
}

async function runScenario(scenario: Scenario, options: BenchOptions): Promise<ScenarioReport> {
  const rig = await scenario.setup(options);
  const tunnel: number[] = [];
  const direct: number[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      // ABBA: even rounds tunnel first, odd rounds baseline first.
      const order = round % 2 === 0 ? ['tunnel', 'direct'] as const : ['direct', 'tunnel'] as const;
      for (const side of order) {
        if (side === 'tunnel') tunnel.push(await rig.tunnel());
        else if (rig.direct) direct.push(await rig.direct());
      }
    }
  } finally {
    await rig.close();
  }
  const t = summarize(tunnel);
  const d = direct.length > 0 ? summarize(direct) : null;
  return {
    name: scenario.name,
    unit: scenario.unit,
    description: scenario.description,
    tunnel: t.median,
    direct: d ? d.median : null,
    peer: null,
    target: null,
    ratio: d ? t.median / d.median : null,
    detail: { tunnel: t, direct: d },
  };
}
