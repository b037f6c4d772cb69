import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { GreedyReport } from '../greedy-runner.ts';

const GREEDY_PATH = fileURLToPath(new URL('../greedy-runner.ts', import.meta.url));
/** How long the workers may take to all get their first answer: 60 s. */
const READY_TIMEOUT_MS = 60_000;
/** How long the runner may take to abort and report once told to stop: 30 s. */
const DONE_TIMEOUT_MS = 30_000;

export interface GreedyOptions {
  /** The gateway's origin, e.g. `https://127.0.0.1:1234`. */
  origin: string;
  /** e.g. `/k8s/clusters/bench`. */
  prefix: string;
  token: string;
  caFile: string;
  /** Downloads in flight at once, each on its own connection. */
  concurrency: number;
  /** Size of each download, bytes. */
  bytes: number;
}

/** A greedy runner whose load is established (every worker answered once): the window is open. */
export interface GreedyRun {
  rampMs: number;
  /** Closes the window: aborts the downloads in flight and returns what the window saw. */
  stop(): Promise<GreedyReport>;
}

/** Starts ../greedy-runner.ts and resolves once its READY line says the load is established. */
export async function startGreedy(o: GreedyOptions): Promise<GreedyRun> {
  const child = spawn(
    process.execPath,
    [GREEDY_PATH, '--origin', o.origin, '--prefix', o.prefix, '--ca', o.caFile, '--concurrency', String(o.concurrency), '--bytes', String(o.bytes)],
    { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, BENCH_RUNNER_TOKEN: o.token } },
  );
  const lines = createInterface({ input: child.stdout });
  const exited = once(child, 'close');
  const next = (prefix: string, timeoutMs: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`greedy runner: no ${prefix} line within ${timeoutMs} ms`)), timeoutMs);
      const onLine = (line: string): void => {
        if (line.startsWith(`${prefix} `)) done(undefined, line.slice(prefix.length + 1));
      };
      const onExit = (code: number | null): void => done(new Error(`greedy runner exited (code ${code}) before ${prefix}`));
      function done(err: Error | undefined, rest?: string): void {
        clearTimeout(timer);
        lines.off('line', onLine);
        child.off('close', onExit);
        if (err) reject(err);
        else resolve(rest!);
      }
      lines.on('line', onLine);
      child.once('close', onExit);
    });
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  try {
    const ready = JSON.parse(await next('READY', READY_TIMEOUT_MS)) as { rampMs: number };
    return {
      rampMs: ready.rampMs,
      async stop() {
        const done = next('DONE', DONE_TIMEOUT_MS);
        child.stdin.end();
        try {
          const report = JSON.parse(await done) as GreedyReport;
          await exited;
          return report;
        } catch (err) {
          await kill();
          throw err;
        }
      },
    };
  } catch (err) {
    await kill();
    throw err;
  }
}
