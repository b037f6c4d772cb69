import type { FullPath, Target } from '../lib/full-path.ts';
import { peakRssDuring } from '../lib/proc-stats.ts';
import { percentile } from '../lib/stats.ts';
import { emitEvents, untilStats } from '../lib/upstream-control.ts';
import { openWatches } from '../lib/watches.ts';
import type { BenchOptions, Rig, Scenario } from './types.ts';

const WATCHES = 10_000;
/** Events per emit round, each to a different random watch, and rounds per sample. */
const EVENTS_PER_ROUND = 50;
const MB = 1e6;

/**
 * 10,000 idle WATCH streams on one tunnel (runner on tunnel-client): peak RSS
 * of the agent and the gateway while they open and while events flow, and
 * the latency of events emitted upstream to random watches, against the
 * same 10,000 watches straight to the upstream.
 */
export const watches10k: Scenario = {
  name: 'watches-10k',
  metrics: [
    {
      name: 'watches-10k-agent-rss',
      unit: 'MB',
      description: `peak agent RSS with ${WATCHES} WATCH streams open through one tunnel`,
      target: { kind: 'at_most', value: 300 },
    },
    { name: 'watches-10k-gateway-rss', unit: 'MB', description: `peak gateway RSS, same`, target: { kind: 'at_most', value: 200 } },
    {
      name: 'watches-10k-event-p50',
      unit: 'ms',
      description: 'event emitted upstream → parsed by the runner, median (direct: the same 10,000 watches straight to the upstream)',
      target: null,
    },
    { name: 'watches-10k-event-p99', unit: 'ms', description: 'same, 99th percentile', target: { kind: 'at_most', value: 20 } },
  ],
  rounds: () => 1,
  async setup(o: BenchOptions): Promise<Rig> {
    const path = await o.startFullPath({});
    const rounds = o.quick ? 10 : 40;
    const sample = async (t: Target, p: FullPath, memory: boolean): Promise<Record<string, number>> => {
      const pids = [p.agentPid(), p.gatewayPid()];
      const { result: latencies, peak } = await peakRssDuring(
        pids,
        async () => {
          const w = await openWatches(t, WATCHES);
          await untilStats(p.upstream, `${WATCHES} watches`, (s) => s.watches >= WATCHES);
          const all: number[] = [];
          try {
            for (let r = 0; r < rounds; r++)
              all.push(
                ...(await w.events(EVENTS_PER_ROUND, async () => {
                  await emitEvents(p.upstream, EVENTS_PER_ROUND);
                })),
              );
          } finally {
            w.close();
          }
          await untilStats(p.upstream, 'watches closed', (s) => s.watches === 0);
          return all;
        },
        100,
      );
      return {
        'watches-10k-event-p50': percentile(latencies, 50),
        'watches-10k-event-p99': percentile(latencies, 99),
        ...(memory ? { 'watches-10k-agent-rss': peak[0]! / MB, 'watches-10k-gateway-rss': peak[1]! / MB } : {}),
      };
    };
    return {
      tunnel: () => sample(path.viaClient, path, true),
      direct: () => sample(path.direct, path, false),
      peer: null,
      close: () => path.close(),
    };
  },
};
