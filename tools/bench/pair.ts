// `pnpm bench:pair --base REF [--rounds N] [--via client|endpoint] [--c1 N] [--c64 N] [--json FILE]`
//
// Small GETs through two whole paths side by side, the code at REF (a git
// worktree in .cache/pair/, its own install and bundle) and the code here
// (its bundle), measured in short ABBA turns within one run
// (lib/pair-rounds.ts), twice: once with each rig started first. c=1
// latency and c=64 rate, and the gateway's and the agent's CPU per request
// at each. For a change worth a few per cent, which the spread between two
// full `pnpm bench` runs on this machine hides.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { REPO_DIR, runFromBundle } from '@pipeops/tunnel-e2e/harness/paths';
import { startCpuMeter } from './lib/cost.ts';
import type { FullPath, FullPathOptions, Target } from './lib/full-path.ts';
import { startFullPath } from './lib/full-path.ts';
import { smallGets } from './lib/http-load.ts';
import { addRound, emptyPairSamples, formatPairRows, pairRows, pairSchedule, type PairSide } from './lib/pair-rounds.ts';
import { percentile } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    rounds: { type: 'string', default: '10' },
    via: { type: 'string', default: 'client' },
    c1: { type: 'string', default: '600' },
    c64: { type: 'string', default: '3000' },
    json: { type: 'string' },
  },
});
if (values.base === undefined) throw new Error('bench:pair: --base REF is required (a commit, branch or tag to compare this tree with)');
if (values.via !== 'client' && values.via !== 'endpoint') throw new Error(`bench:pair: --via is client or endpoint, not ${values.via}`);
const rounds = Number(values.rounds);
const c1Count = Number(values.c1);
const c64Count = Number(values.c64);
for (const [flag, n] of [
  ['--c1', c1Count],
  ['--c64', c64Count],
] as const) {
  if (!Number.isInteger(n) || n < 100) throw new Error(`bench:pair: ${flag} is a number of requests per round, at least 100, not ${n}`);
}

const git = (...args: string[]): string => execFileSync('git', args, { cwd: REPO_DIR, encoding: 'utf8' }).trim();
const baseSha = git('rev-parse', '--verify', `${values.base}^{commit}`);
const headName = `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') === '' ? '' : '+changes'}`;

/** The base tree: a detached worktree of `sha`, installed; kept for the next comparison with the same commit. */
function baseTree(sha: string): string {
  const dir = join(REPO_DIR, '.cache', 'pair', sha.slice(0, 12));
  if (!existsSync(join(dir, 'node_modules'))) {
    mkdirSync(join(REPO_DIR, '.cache', 'pair'), { recursive: true });
    if (!existsSync(dir)) git('worktree', 'add', '--detach', dir, sha);
    execFileSync('pnpm', ['install', '--frozen-lockfile', '--prefer-offline'], { cwd: dir, stdio: ['ignore', process.stderr, 'inherit'] });
  }
  return dir;
}

/** What this script needs from a tree's bench harness (the base's is loaded from its worktree). */
interface Harness {
  startFullPath(o?: FullPathOptions): Promise<FullPath>;
  smallGets(t: Target, count: number, concurrency: number): Promise<{ latencies: number[]; perSecond: number }>;
}

async function baseHarness(dir: string): Promise<Harness> {
  const load = (path: string): Promise<Record<string, unknown>> => import(pathToFileURL(join(dir, path)).href);
  const paths = await load('e2e/harness/paths.ts');
  const fullPath = await load('tools/bench/lib/full-path.ts');
  const httpLoad = await load('tools/bench/lib/http-load.ts');
  if (typeof paths.runFromBundle !== 'function' || typeof fullPath.startFullPath !== 'function' || typeof httpLoad.smallGets !== 'function') {
    throw new Error(`bench:pair: ${values.base} predates the bench harness this needs (runFromBundle, startFullPath, smallGets)`);
  }
  (paths.runFromBundle as () => string)();
  return { startFullPath: fullPath.startFullPath as Harness['startFullPath'], smallGets: httpLoad.smallGets as Harness['smallGets'] };
}

interface Rig {
  harness: Harness;
  path: FullPath;
  target: Target;
}

async function startRig(harness: Harness): Promise<Rig> {
  const path = await harness.startFullPath({});
  return { harness, path, target: values.via === 'client' ? path.viaClient : path.viaEndpoint };
}

/** One round on one rig: c=1 latency and c=64 rate, with the gateway's and the agent's CPU per request in each. */
async function measure(rig: Rig): Promise<Record<string, number>> {
  const processes = { gateway: rig.path.gatewayPid(), agent: rig.path.agentPid() };
  const cpuPerRequest = async (count: number, concurrency: number) => {
    const meter = startCpuMeter(processes);
    const result = await rig.harness.smallGets(rig.target, count, concurrency);
    const { all } = meter();
    const us = (s: number | undefined): number => ((s ?? 0) * 1e6) / count;
    return { result, gateway: us(all.gateway), agent: us(all.agent) };
  };
  const one = await cpuPerRequest(c1Count, 1);
  const many = await cpuPerRequest(c64Count, 64);
  return {
    'c1 p50 µs': percentile(one.result.latencies, 50) * 1000,
    'c1 p99 µs': percentile(one.result.latencies, 99) * 1000,
    'c1 gw µs': one.gateway,
    'c1 agent µs': one.agent,
    'c64 req/s': many.result.perSecond,
    'c64 gw µs': many.gateway,
    'c64 agent µs': many.agent,
  };
}

process.stderr.write(`base ${baseSha.slice(0, 12)}: worktree and install …\n`);
const harnesses: Record<PairSide, Harness> = { base: await baseHarness(baseTree(baseSha)), head: { startFullPath, smallGets } };
runFromBundle();
const samples = emptyPairSamples();
// A crossover: with the same code on both sides (A/A runs, 40 rounds each) the rig started second
// measured ~2 % lower c=1 latency and 5–10 % less agent CPU than the first, whichever side it was.
// So the comparison runs twice, the base's rig started first and then the head's, on fresh rigs.
for (const order of [['base', 'head'] as const, ['head', 'base'] as const]) {
  const rigs = new Map<PairSide, Rig>();
  try {
    for (const side of order) rigs.set(side, await startRig(harnesses[side]));
    // Warm-up: V8 settles a relay's path only after some 15,000 requests (docs/benchmarks.md, "c=1 again").
    for (const rig of rigs.values()) {
      await rig.harness.smallGets(rig.target, 4_000, 1);
      await rig.harness.smallGets(rig.target, 12_000, 64);
    }
    for (const round of pairSchedule(rounds)) {
      addRound(samples, round, await measure(rigs.get(round.side)!));
      process.stderr.write('.');
    }
  } finally {
    for (const rig of rigs.values()) await rig.path.close();
  }
}
process.stderr.write('\n');
const rows = pairRows(samples);
process.stdout.write(`${formatPairRows(rows, baseSha.slice(0, 10), headName)}\n`);
if (values.json !== undefined)
  writeFileSync(resolve(values.json), `${JSON.stringify({ base: baseSha, head: headName, via: values.via, rounds, rows }, null, 2)}\n`);
