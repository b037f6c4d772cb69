// A real HAProxy (Debian's package) in front of gateway replicas, as a load
// balancer in production would be: TCP pass-through (TLS ends at the
// replicas), health checks on each replica's `/ready` over TLS, a replica
// taken out as soon as it answers 503. `balance first` (the default) sends
// every new connection to the first healthy replica in order, so a test knows
// where an agent lands; `leastconn` spreads long-lived connections as a
// production balancer in front of a fleet would.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from './free-port.ts';
import { join } from 'node:path';
import { waitFor } from './wait-for.ts';

/** A running HAProxy. */
export interface Haproxy {
  /** `https://127.0.0.1:PORT` (TLS passes through to a replica). */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** The haproxy binary, or a clear error saying how to install it. */
export function haproxyBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v haproxy || ls /usr/sbin/haproxy'], { encoding: 'utf8' });
  const path = found.stdout.trim().split('\n')[0] ?? '';
  if (found.status !== 0 || path === '') throw new Error('haproxy is not installed: apt-get install haproxy (Debian 12 ships 2.6)');
  return path;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface HaproxyOptions {
  /** Where haproxy.cfg is written. */
  dir: string;
  /** Ports on 127.0.0.1, in `balance first` order. */
  backends: number[];
  /** Health check period (ms). Default 100. */
  checkIntervalMs?: number;
  /** Default `first`. */
  balance?: 'first' | 'leastconn' | 'roundrobin';
}

/** Starts HAProxy on a free port of 127.0.0.1 in front of `backends`; `after` stops it. */
export async function startHaproxy(t: { after(fn: () => Promise<void> | void): void }, o: HaproxyOptions): Promise<Haproxy> {
  const bin = haproxyBinary();
  const port = await freePort();
  const inter = o.checkIntervalMs ?? 100;
  const config = join(o.dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      '  maxconn 8192',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 1h',
      '  timeout server 1h',
      '  timeout tunnel 1h',
      '  option redispatch',
      '  retries 3',
      'frontend gateways',
      `  bind 127.0.0.1:${port}`,
      '  default_backend replicas',
      'backend replicas',
      `  balance ${o.balance ?? 'first'}`,
      '  option httpchk GET /ready',
      '  http-check expect status 200',
      `  default-server check check-ssl verify none inter ${inter}ms fall 1 rise 1`,
      ...o.backends.map((p, i) => `  server replica${i} 127.0.0.1:${p}`),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(bin, ['-f', config, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += String(c);
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = once(child, 'exit');
    child.kill('SIGTERM');
    await gone;
  };
  t.after(stop);
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}): ${stderr}`);
      return accepts(port);
    },
    { what: 'haproxy to listen' },
  );
  return { url: `https://127.0.0.1:${port}`, port, stop };
}
