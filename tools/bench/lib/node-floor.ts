// Two bare Node TLS-terminating relays (../tls-relay.ts) between the runner
// and the upstream, where the gateway and the agent stand: the floor of a
// two-hop tunnel written in Node, measured in the same run as the tunnel,
// direct access and chisel. What the floor costs, any two-hop design in Node
// costs before it reads one header; what the tunnel costs above it is ours.
import { once } from 'node:events';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import type { Target } from './full-path.ts';

const RELAY_PATH = fileURLToPath(new URL('../tls-relay.ts', import.meta.url));

export interface NodeFloor {
  /** Runner → relay (where the gateway stands) → relay (where the agent stands) → upstream. */
  target: Target;
  /** The relay next to the runner (charged as `gateway` in the cost table). */
  nearPid: number;
  /** The relay next to the upstream (charged as `agent`). */
  farPid: number;
  close(): Promise<void>;
}

interface Relay { port: number; pid: number; child: ChildProcess }

async function startRelay(nextPort: number, nextCa: string, caOut: string): Promise<Relay> {
  // The young-generation setting the pipeops-tunnel launcher gives the gateway and the agent.
  const child = spawn(process.execPath, ['--semi-space-growth-factor=1', RELAY_PATH, '--next-port', String(nextPort), '--next-ca', nextCa, '--ca-out', caOut], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit').then(() => { throw new Error('tls-relay exited before READY'); });
  const ready = (async () => {
    for await (const line of createInterface({ input: child.stdout })) if (line.startsWith('READY ')) return Number(line.slice(6));
    throw new Error('tls-relay closed stdout before READY');
  })();
  return { port: await Promise.race([ready, exited]), pid: child.pid!, child };
}

async function stop(r: Relay): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return;
  const gone = once(r.child, 'exit');
  r.child.stdin!.end();
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 5_000).unref();
  await gone;
  clearTimeout(timer);
}

/** Starts the two relays in `dir` in front of the upstream at `upstreamPort` (trusting `upstreamCa`); `headers` go with every request. */
export async function startNodeFloor(o: { dir: string; upstreamPort: number; upstreamCa: string; headers: Record<string, string> }): Promise<NodeFloor> {
  const far = await startRelay(o.upstreamPort, o.upstreamCa, join(o.dir, 'floor-far-ca.pem'));
  let near: Relay;
  try {
    near = await startRelay(far.port, join(o.dir, 'floor-far-ca.pem'), join(o.dir, 'floor-near-ca.pem'));
  } catch (err) {
    await stop(far);
    throw err;
  }
  const dispatcher = new Agent({ connect: { ca: readFileSync(join(o.dir, 'floor-near-ca.pem')) }, keepAliveTimeout: 30_000, connections: null, allowH2: false });
  return {
    target: { origin: `https://127.0.0.1:${near.port}`, prefix: '', headers: o.headers, dispatcher },
    nearPid: near.pid, farPid: far.pid,
    async close() { await dispatcher.close(); await stop(near); await stop(far); },
  };
}
