import type { Processes, Side } from '../lib/cost.ts';
import type { FullPath, Target } from '../lib/full-path.ts';
import { download, downloads, upload } from '../lib/http-load.ts';
import type { BenchOptions, Metric, Rig, Scenario } from './types.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** The runner's way into the tunnel. */
export type Via = 'client' | 'endpoint';
/**
 * What a scenario's `tunnel` side runs through: one of the tunnel's ways in,
 * or `node-floor`, which is not the tunnel but two bare Node TLS relays
 * where the gateway and the agent stand (lib/node-floor.ts): the floor of
 * any two-hop design in Node, in the same run.
 */
export type WayIn = Via | 'node-floor';

/** The runner's way in: `@pipeops/tunnel-client` (mux over /ws/runner) or HTTPS to the gateway's /k8s/clusters/…. */
export function tunnelTarget(path: FullPath, via: Via): Target {
  return via === 'client' ? path.viaClient : path.viaEndpoint;
}

/** The target of a scenario's `tunnel` side, and the processes each side's samples are charged for. */
export async function wayIn(path: FullPath, way: WayIn): Promise<{ target: Target; processes: (side: Side) => Processes }> {
  if (way !== 'node-floor') return { target: tunnelTarget(path, way), processes: path.costProcesses };
  const floor = await path.nodeFloor();
  return {
    target: floor.target,
    processes: (side) => (side === 'tunnel' ? { ...path.costProcesses('direct'), gateway: floor.nearPid, agent: floor.farPid } : path.costProcesses(side)),
  };
}

const WAY_TEXT: Record<WayIn, string> = {
  client: 'runner on @pipeops/tunnel-client',
  endpoint: "runner on the gateway's /k8s/clusters endpoint (HTTPS)",
  'node-floor':
    'NOT the tunnel: two bare Node TLS-terminating relays piping bytes where the gateway and the agent stand, CPU charged as theirs (the floor of a two-hop design in Node)',
};
export const viaText = (way: WayIn): string => WAY_TEXT[way];

interface ThroughputSpec {
  name: string;
  description: string;
  via: WayIn;
  target: Metric['target'];
  peerTarget?: Metric['peerTarget'];
  /** Bytes one sample moves. */
  bytes(quick: boolean): number;
  /** One sample of `bytes` against a target, in MB/s. */
  sample(t: Target, bytes: number): Promise<number>;
}

/** A throughput scenario on the shared full path: tunnel, direct and chisel, the same sample function, CPU charged per GiB. */
function throughput(spec: ThroughputSpec): Scenario {
  return {
    name: spec.name,
    metrics: [
      {
        name: spec.name,
        unit: 'MB/s',
        description: `${spec.description}; ${viaText(spec.via)}`,
        target: spec.target,
        ...(spec.peerTarget ? { peerTarget: spec.peerTarget } : {}),
      },
    ],
    async setup(o: BenchOptions): Promise<Rig> {
      const path = await o.fullPath();
      const { target: tunnel, processes } = await wayIn(path, spec.via);
      const bytes = spec.bytes(o.quick);
      const measure = (t: Target) => async () => ({ [spec.name]: await spec.sample(t, bytes) });
      // Warm-up, untimed: JIT, TLS sessions, TCP windows, keep-alive pools.
      for (const t of [tunnel, path.direct, path.peer]) if (t !== null) await spec.sample(t, spec.bytes(true));
      return {
        tunnel: measure(tunnel),
        direct: measure(path.direct),
        peer: path.peer === null ? null : measure(path.peer),
        cost: { unit: 'cpu_s_per_gib', perSample: bytes / GiB, processes },
        close: async () => {},
      };
    },
  };
}

/**
 * Issue 10's target for every bulk transfer, on both ways in: 1.5× what
 * chisel moves in the same run. No target against direct: on this machine
 * chisel itself reaches about a third of direct, so the peer target is the
 * one that says something about the tunnel.
 */
const PEER_TARGET = { kind: 'ratio_at_least', value: 1.5 } as const;

/** A scenario's name for `via`: `base`, `base-endpoint` or `base-node-floor`. */
export const named = (base: string, via: WayIn): string => (via === 'client' ? base : `${base}-${via}`);

export const response1GiB = (via: WayIn): Scenario =>
  throughput({
    name: named('response-1gib', via),
    description: 'one 1 GiB response body (64 MiB with --quick)',
    via,
    target: null,
    peerTarget: PEER_TARGET,
    bytes: (quick) => (quick ? 64 : 1024) * MiB,
    sample: download,
  });

export const upload256MiB = (via: WayIn): Scenario =>
  throughput({
    name: named('upload-256mib', via),
    description: 'one 256 MiB request body (32 MiB with --quick)',
    via,
    target: null,
    peerTarget: PEER_TARGET,
    bytes: (quick) => (quick ? 32 : 256) * MiB,
    sample: upload,
  });

const CONCURRENT = 16;

export const responses16x256MiB = (via: WayIn): Scenario =>
  throughput({
    name: named('responses-16x256mib', via),
    description: '16 concurrent 256 MiB responses, aggregate (16 × 16 MiB with --quick)',
    via,
    target: null,
    peerTarget: PEER_TARGET,
    bytes: (quick) => CONCURRENT * (quick ? 16 : 256) * MiB,
    sample: (t, bytes) => downloads(t, CONCURRENT, bytes / CONCURRENT),
  });
