import type { Target } from '../lib/full-path.ts';
import { smallGets } from '../lib/http-load.ts';
import { percentile } from '../lib/stats.ts';
import type { BenchOptions, Rig, Scenario } from './types.ts';
import { named, viaText, wayIn, type WayIn } from './http-throughput.ts';

/**
 * Small GET (~1 KiB ConfigMap JSON) at concurrency 1: p50 and p99 latency,
 * the tunnel's added latency judged against direct (issue 10: at most
 * +0.25 ms at the median, +1 ms at the 99th percentile); CPU per request.
 */
export function smallGetLatency(via: WayIn): Scenario {
  const name = named('small-get-c1', via);
  const p50 = `${name}-p50`;
  const p99 = `${name}-p99`;
  const what = `small GET (~1 KiB JSON), one at a time, request to last byte; ${viaText(via)}`;
  return {
    name,
    metrics: [
      { name: p50, unit: 'ms', description: `${what}; median latency`, target: { kind: 'added_at_most', value: 0.25 } },
      { name: p99, unit: 'ms', description: `${what}; 99th percentile`, target: { kind: 'added_at_most', value: 1 } },
    ],
    async setup(o: BenchOptions): Promise<Rig> {
      const path = await o.fullPath();
      const count = o.quick ? 1_000 : 5_000;
      const measure = (t: Target) => async () => {
        const { latencies } = await smallGets(t, count, 1);
        return { [p50]: percentile(latencies, 50), [p99]: percentile(latencies, 99) };
      };
      const { target: tunnel, processes } = await wayIn(path, via);
      for (const t of [tunnel, path.direct, path.peer]) if (t !== null) await smallGets(t, 500, 1);
      return {
        tunnel: measure(tunnel),
        direct: measure(path.direct),
        peer: path.peer && measure(path.peer),
        cost: { unit: 'cpu_us_per_request', perSample: count, processes },
        close: async () => {},
      };
    },
  };
}

/** Small GETs 64 at a time: requests per second, judged against chisel (issue 10: at least 1.5×); CPU per request. */
export function smallGetRate(via: WayIn): Scenario {
  const name = named('small-get-c64', via);
  return {
    name,
    metrics: [
      {
        name,
        unit: 'req/s',
        description: `small GET (~1 KiB JSON), 64 concurrent; ${viaText(via)}`,
        target: null,
        peerTarget: { kind: 'ratio_at_least', value: 1.5 },
      },
    ],
    async setup(o: BenchOptions): Promise<Rig> {
      const path = await o.fullPath();
      const count = o.quick ? 5_000 : 20_000;
      const measure = (t: Target) => async () => ({ [name]: (await smallGets(t, count, 64)).perSecond });
      const { target: tunnel, processes } = await wayIn(path, via);
      for (const t of [tunnel, path.direct, path.peer]) if (t !== null) await smallGets(t, 2_000, 64);
      return {
        tunnel: measure(tunnel),
        direct: measure(path.direct),
        peer: path.peer && measure(path.peer),
        cost: { unit: 'cpu_us_per_request', perSample: count, processes },
        close: async () => {},
      };
    },
  };
}
