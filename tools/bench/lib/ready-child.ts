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

/** Starts `node [args]` and waits for its READY line; `name` is for the errors. */
export async function startReadyChild(name: string, args: string[]): Promise<ReadyChild> {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit').then(() => { throw new Error(`${name} exited before READY`); });
  const ready = (async () => {
    for await (const line of createInterface({ input: child.stdout })) if (line.startsWith('READY ')) return line.slice(6);
    throw new Error(`${name} closed stdout before READY`);
  })();
  const payload = await Promise.race([ready, exited]);
  return {
    child, pid: child.pid!, payload,
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
