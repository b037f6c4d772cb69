import type { FullPath, Target } from '../lib/full-path.ts';
import { download, downloads, upload } from '../lib/http-load.ts';
import type { BenchOptions, Metric, Rig, Scenario } from './types.ts';

const MiB = 1024 * 1024;
export type Via = 'client' | 'endpoint';

/** The runner's way in: `@pipeops/tunnel-client` (mux over /ws/runner) or HTTPS to the gateway's /k8s/clusters/…. */
export function tunnelTarget(path: FullPath, via: Via): Target {
  return via === 'client' ? path.viaClient : path.viaEndpoint;
}

export const viaText = (via: Via): string => (via === 'client' ? 'runner on @pipeops/tunnel-client' : "runner on the gateway's /k8s/clusters endpoint (HTTPS)");

interface ThroughputSpec {
  name: string;
  description: string;
  via: Via;
  target: Metric['target'];
  peerTarget?: Metric['peerTarget'];
  /** One sample against a target, in MB/s. */
  sample(t: Target, quick: boolean): Promise<number>;
}

/** A throughput scenario on the shared full path: tunnel, direct and chisel, the same sample function. */
function throughput(spec: ThroughputSpec): Scenario {
  return {
    name: spec.name,
    metrics: [{
      name: spec.name, unit: 'MB/s', description: `${spec.description}; ${viaText(spec.via)}`, target: spec.target,
      ...(spec.peerTarget ? { peerTarget: spec.peerTarget } : {}),
    }],
    async setup(o: BenchOptions): Promise<Rig> {
      const path = await o.fullPath();
      const tunnel = tunnelTarget(path, spec.via);
      const measure = (t: Target) => async () => ({ [spec.name]: await spec.sample(t, o.quick) });
      // Warm-up, untimed: JIT, TLS sessions, TCP windows, keep-alive pools.
      for (const t of [tunnel, path.direct, path.peer]) if (t !== null) await spec.sample(t, true);
      return {
        tunnel: measure(tunnel),
        direct: measure(path.direct),
        peer: path.peer === null ? null : measure(path.peer),
        close: async () => {},
      };
    },
  };
}

export const response1GiB = (via: Via): Scenario => throughput({
  name: via === 'client' ? 'response-1gib' : 'response-1gib-endpoint',
  description: 'one 1 GiB response body (64 MiB with --quick)', via,
  target: { kind: 'ratio_at_least', value: 0.4 },
  ...(via === 'client' ? { peerTarget: { kind: 'ratio_at_least', value: 3 } as const } : {}),
  sample: (t, quick) => download(t, (quick ? 64 : 1024) * MiB),
});

export const upload256MiB = (via: Via): Scenario => throughput({
  name: via === 'client' ? 'upload-256mib' : 'upload-256mib-endpoint',
  description: 'one 256 MiB request body (32 MiB with --quick)', via,
  target: { kind: 'ratio_at_least', value: 0.4 },
  sample: (t, quick) => upload(t, (quick ? 32 : 256) * MiB),
});

export const responses16x256MiB = (via: Via): Scenario => throughput({
  name: via === 'client' ? 'responses-16x256mib' : 'responses-16x256mib-endpoint',
  description: '16 concurrent 256 MiB responses, aggregate (16 × 16 MiB with --quick)', via,
  target: { kind: 'ratio_at_least', value: 0.3 },
  sample: (t, quick) => downloads(t, 16, (quick ? 16 : 256) * MiB),
});
