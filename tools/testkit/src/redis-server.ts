// A real redis-server (Debian's package) for the tests of the gateway fleet:
// started on 127.0.0.1 with no persistence, stopped, killed and restarted on
// the same port by the tests themselves.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { freePort } from './free-port.ts';
import { createInterface } from 'node:readline';

/** A running redis-server. */
export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  url: string;
  port: number;
  pid(): number | undefined;
  /** SIGKILL: gone at once, as a crashed server. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty (no persistence). */
  restart(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
}

/** The redis-server binary, or a clear error saying how to install it (CI does: .ci/run). */
export function redisServerBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status !== 0 || path === '') throw new Error('redis-server is not installed: apt-get install redis-server (Debian 12 ships 7.0)');
  return path;
}

async function launch(bin: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    bin,
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'notice', '--daemonize', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`redis-server exited (${String(code)}) before it was ready`);
  });
  const ready = (async () => {
    for await (const line of createInterface({ input: child.stdout! })) if (/Ready to accept connections/.test(line)) return;
    throw new Error('redis-server closed its output before it was ready');
  })();
  child.stderr!.resume();
  await Promise.race([ready, exited]);
  child.stdout!.resume();
  return child;
}

async function end(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = once(child, 'exit');
  child.kill(signal);
  await gone;
}

/** Starts redis-server on a free port of 127.0.0.1; `after` stops it. */
export async function startRedisServer(t: { after(fn: () => Promise<void> | void): void }): Promise<RedisServer> {
  const bin = redisServerBinary();
  const port = await freePort();
  let child: ChildProcess | undefined = await launch(bin, port);
  t.after(() => end(child, 'SIGTERM'));
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: () => child?.pid,
    kill: async () => {
      await end(child, 'SIGKILL');
      child = undefined;
    },
    restart: async () => {
      await end(child, 'SIGTERM');
      child = await launch(bin, port);
    },
    stop: async () => {
      await end(child, 'SIGTERM');
      child = undefined;
    },
  };
}
