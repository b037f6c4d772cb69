// Two bare Node TLS-terminating relays (../tls-relay.ts) between the runner
// and the upstream, where the gateway and the agent stand: the floor of a
// two-hop tunnel written in Node, measured in the same run as the tunnel,
// direct access and chisel. What the floor costs, any two-hop design in Node
// costs before it reads one header; what the tunnel costs above it is ours.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import type { Target } from './full-path.ts';
import { startReadyChild, type ReadyChild } from './ready-child.ts';

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

async function startRelay(nextPort: number, nextCa: string, caOut: string): Promise<ReadyChild> {
  // The young-generation setting the pipeops-tunnel launcher gives the gateway and the agent (RELAY_SEMI_SPACE_MIB in packages/cli/bin/launcher.js).
  return startReadyChild('tls-relay', ['--max-semi-space-size=8', RELAY_PATH, '--next-port', String(nextPort), '--next-ca', nextCa, '--ca-out', caOut]);
}

/** Starts the two relays in `dir` in front of the upstream at `upstreamPort` (trusting `upstreamCa`); `headers` go with every request. */
export async function startNodeFloor(o: { dir: string; upstreamPort: number; upstreamCa: string; headers: Record<string, string> }): Promise<NodeFloor> {
  const far = await startRelay(o.upstreamPort, o.upstreamCa, join(o.dir, 'floor-far-ca.pem'));
  let near: ReadyChild;
  try {
    near = await startRelay(Number(far.payload), join(o.dir, 'floor-far-ca.pem'), join(o.dir, 'floor-near-ca.pem'));
  } catch (err) {
    await far.close();
    throw err;
  }
  const dispatcher = new Agent({
    connect: { ca: readFileSync(join(o.dir, 'floor-near-ca.pem')) },
    keepAliveTimeout: 30_000,
    connections: null,
    allowH2: false,
  });
  return {
    target: { origin: `https://127.0.0.1:${near.payload}`, prefix: '', headers: o.headers, dispatcher },
    nearPid: near.pid,
    farPid: far.pid,
    async close() {
      await dispatcher.close();
      await near.close();
      await far.close();
    },
  };
}
