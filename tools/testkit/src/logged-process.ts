// A child process that writes JSON log records (one per line) on stdout, as
// pipeops-tunnel does: its records as they come, its whole output, and a
// wait for the first record that matches. Used for the command run by the
// CLI tests, from an installed package, or from the container image.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface LoggedProcess {
  child: ChildProcess;
  /** Every log record so far (parsed JSON lines). */
  records: Array<Record<string, unknown>>;
  /** All raw output so far, stdout and stderr. */
  output(): string;
  /** Resolves with the first record (past or future) matching `pred`; rejects at the deadline (default 20 s) or if the process exits first. */
  waitFor(pred: (r: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
}

/** Spawns `command` with `args` (stdin ignored, stdout and stderr read). */
export function spawnLogged(command: string, args: readonly string[], options: Omit<SpawnOptions, 'stdio'> = {}): LoggedProcess {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const records: Array<Record<string, unknown>> = [];
  let raw = '';
  let pending = '';
  const waiters = new Set<() => void>();
  let done = false;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    raw += d;
    pending += d;
    let i: number;
    while ((i = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, i);
      pending = pending.slice(i + 1);
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not a record */
      }
    }
    for (const w of waiters) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    raw += d;
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('close', (code) => {
      done = true;
      for (const w of waiters) w();
      resolve(code);
    });
  });
  return {
    child,
    records,
    exited,
    output: () => raw,
    waitFor(pred, what, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const r = records.find(pred);
          if (r !== undefined) {
            cleanup();
            resolve(r);
            return;
          }
          if (done) {
            cleanup();
            reject(new Error(`process exited (${child.exitCode ?? child.signalCode}) before: ${what}\n${raw}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for: ${what}\n${raw}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
