import { download } from '../lib/http-load.ts';
import { startLatencyRelay, type LatencyRelay } from '../lib/latency-relay.ts';
import type { Target } from '../lib/full-path.ts';
import type { BenchOptions, Rig, Scenario } from './types.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** One way; 50 ms round trip. */
const ONE_WAY_DELAY_MS = 25;

/**
 * One 256 MiB response over a 50 ms round-trip link between agent and
 * gateway (the WAN hop in production), through the latency relay (a stand-in
 * for netem, which this kernel lacks). Direct: the runner to the upstream
 * through the same kind of relay. With yamux's fixed 256 KiB window one
 * stream could not pass 256 KiB / 50 ms ≈ 5 MB/s; the agent's windows grow
 * toward `tunnel.stream_window` (default 16 MiB) while the stream is read.
 * CPU per GiB as in the other throughput scenarios, with one difference:
 * the relays run in the bench process, so on both sides the runner's figure
 * includes the relay's.
 */
export const highLatency: Scenario = {
  name: 'high-latency',
  metrics: [
    {
      name: 'high-latency-1-stream',
      unit: 'MB/s',
      description:
        'one 256 MiB response (64 MiB with --quick), 50 ms RTT between agent and gateway (direct: 50 ms RTT between runner and upstream), default stream_window',
      target: { kind: 'at_least', value: 50 },
    },
  ],
  rounds: (o) => (o.quick ? 1 : 3),
  async setup(o: BenchOptions): Promise<Rig> {
    const relays: LatencyRelay[] = [];
    const path = await o.startFullPath({
      agentDialUrl: async (gatewayUrl) => {
        const relay = await startLatencyRelay(Number(new URL(gatewayUrl).port), ONE_WAY_DELAY_MS);
        relays.push(relay);
        return `https://127.0.0.1:${relay.port}`;
      },
    });
    const directRelay = await startLatencyRelay(path.upstream.port, ONE_WAY_DELAY_MS);
    relays.push(directRelay);
    const direct: Target = { ...path.direct, origin: `https://127.0.0.1:${directRelay.port}` };
    const bytes = (o.quick ? 64 : 256) * MiB;
    return {
      tunnel: async () => ({ 'high-latency-1-stream': await download(path.viaClient, bytes) }),
      direct: async () => ({ 'high-latency-1-stream': await download(direct, bytes) }),
      peer: null,
      cost: { unit: 'cpu_s_per_gib', perSample: bytes / GiB, processes: path.costProcesses },
      async close() {
        await path.close();
        for (const r of relays) await r.close();
      },
    };
  },
};
