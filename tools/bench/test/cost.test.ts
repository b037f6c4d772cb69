// What a benchmark sample is charged: a process's CPU over every thread,
// with its main thread's share apart (lib/proc-stats.ts), and the cost
// report's medians over the rounds (lib/cost.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { costReport, type SampleCpu } from '../lib/cost.ts';
import { cpuSnapshot, cpuSplitSince } from '../lib/proc-stats.ts';

// A worker thread does three times the main thread's work and stays (KEEP=1) or exits, then the child says DONE
// and waits for stdin to close.
const CHILD = `
const { Worker } = require('node:worker_threads');
const spin = (n) => { let x = 0; for (let i = 0; i < n; i++) x = (x + i * 7) % 1000003; return x; };
process.stdin.once('data', () => {
  const w = new Worker('(' + spin.toString() + ')(3e8); require("node:worker_threads").parentPort.postMessage(1);' + (process.env.KEEP === '1' ? 'setInterval(() => {}, 1e6)' : ''), { eval: true });
  w.once('message', () => { spin(1e8); process.stdout.write('DONE\\n'); });
});
process.stdin.resume();
process.stdin.once('end', () => process.exit(0));
`;

async function workerAndMain(keepWorker: boolean): Promise<{ seconds: number; mainSeconds: number }> {
  const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, KEEP: keepWorker ? '1' : '0' } });
  try {
    const lines = createInterface({ input: child.stdout });
    const done = new Promise<void>((resolve) => lines.once('line', () => resolve()));
    const before = cpuSnapshot(child.pid!);
    child.stdin.write('go\n');
    await done;
    return cpuSplitSince(before);
  } finally {
    child.stdin.end();
    await once(child, 'exit');
  }
}

test('a process is charged for every thread, and the part outside its main thread is told apart', async () => {
  const { seconds, mainSeconds } = await workerAndMain(true);
  assert.ok(mainSeconds > 0, `main thread ${mainSeconds} s`);
  assert.ok(seconds >= mainSeconds, `all threads ${seconds} s, main ${mainSeconds} s`);
  assert.ok(seconds - mainSeconds > mainSeconds, `the worker's ${seconds - mainSeconds} s against the main thread's ${mainSeconds} s`);
});

test('a thread that started and exited between two snapshots is still charged (from the process ticks)', async () => {
  const { seconds, mainSeconds } = await workerAndMain(false);
  assert.ok(seconds - mainSeconds > mainSeconds, `the gone worker's ${seconds - mainSeconds} s against the main thread's ${mainSeconds} s`);
});

test('the cost report gives medians per process over the rounds, and the same for the other threads', () => {
  const sample = (gateway: number, gatewayMain: number, agent: number, agentMain: number): SampleCpu => ({
    all: { gateway, agent },
    main: { gateway: gatewayMain, agent: agentMain },
  });
  const spec = { unit: 'cpu_us_per_request' as const, perSample: 1_000_000, processes: () => ({}) };
  // Seconds per 10^6 requests are µs per request; the other threads per sample: 20 + 10, 5 + 30, 20 + 1.
  const r = costReport('s', spec, { tunnel: [sample(60, 40, 90, 80), sample(50, 45, 100, 70), sample(70, 50, 80, 79)], direct: [], peer: [] });
  assert.equal(r.direct, null);
  assert.deepEqual({ ...r.tunnel, otherThreads: undefined }, { gateway: 60, agent: 90, total: 150, otherThreads: undefined });
  assert.deepEqual(r.tunnel?.otherThreads, { gateway: 20, agent: 10, total: 30 });
});
