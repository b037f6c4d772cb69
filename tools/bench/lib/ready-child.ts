// A helper process of the benchmark (the upstream, the node floor's relays):
// started with this Node, ready once it prints `READY <payload>`, stopped by
// closing its stdin (SIGKILL after 5 s).
import { once } from 'node:events';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

export interface ReadyChild {
  child: ChildProcessByStdio<Writable, Readable, null>;
  pid: number;
  /** What followed `READY ` on its line. */
  payload: string;
  /** Ends its stdin and waits for it to exit (SIGKILL after 5 s). Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts `node [args]` and waits for its READY line; `name` is for the errors.
 * Every other line of its stdout, before and after READY, goes to `onLine`.
 */
export async function startReadyChild(name: string, args: string[], onLine: (line: string) => void = () => {}): Promise<ReadyChild> {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit').then(() => {
    throw new Error(`${name} exited before READY`);
  });
  const ready = new Promise<string>((resolve, reject) => {
    let seen = false;
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (!seen && line.startsWith('READY ')) {
        seen = true;
        resolve(line.slice(6));
      } else onLine(line);
    });
    lines.once('close', () => {
      if (!seen) reject(new Error(`${name} closed stdout before READY`));
    });
  });
  const payload = await Promise.race([ready, exited]);
  return {
    child,
    pid: child.pid!,
    payload,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = once(child, 'exit');
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      await gone;
      clearTimeout(timer);
    },
  };
}
