import { request } from 'undici';
import type { FullPath, Target } from '../lib/full-path.ts';
import { download } from '../lib/http-load.ts';
import { rssBytes } from '../lib/proc-stats.ts';
import { untilStats, upstreamStats } from '../lib/upstream-control.ts';
import type { BenchOptions, Rig, Scenario } from './types.ts';
import { tunnelTarget, viaText, type Via } from './http-throughput.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
/** The path counts as stalled once the upstream has not written a byte for this long. */
const STALL_MS = 1_500;

/**
 * A runner asks for 1 GiB and reads nothing after the response head. Every
 * buffer on the way fills up to its bound and the upstream's writer stalls;
 * the figure is how much each process's RSS grew by then (MiB). Only
 * windows and buffers may hold bytes: nothing may grow with the response.
 */
export function pausedReader(via: Via): Scenario {
  const name = `paused-reader${via === 'client' ? '' : '-endpoint'}`;
  const m = (what: string) => `${name}-${what}`;
  return {
    name,
    metrics: [
      {
        name: m('max-rss-growth'),
        unit: 'MiB',
        description: `1 GiB response, runner reads nothing after the head; largest RSS growth of runner, gateway and agent once the upstream stalled; ${viaText(via)}`,
        target: { kind: 'at_most', value: 16 },
      },
      { name: m('gateway-rss-growth'), unit: 'MiB', description: 'same, gateway', target: null },
      { name: m('agent-rss-growth'), unit: 'MiB', description: 'same, agent', target: null },
      { name: m('runner-rss-growth'), unit: 'MiB', description: 'same, runner process (tunnel-client, or undici over HTTPS)', target: null },
      {
        name: m('bytes-in-flight'),
        unit: 'MiB',
        description: 'bytes the upstream wrote before it stalled (all of them sit in windows, socket buffers and stream buffers on the way)',
        target: null,
      },
    ],
    rounds: (o) => (o.quick ? 1 : 3),
    async setup(o: BenchOptions): Promise<Rig> {
      const path = await o.startFullPath({});
      // Warm up first (one full 64 MiB transfer): the growth measured is then the paused stream's, not the
      // V8 young generation and socket buffers reaching their working size on the first transfer.
      await download(tunnelTarget(path, via), 64 * MiB);
      return {
        tunnel: () => sample(path, tunnelTarget(path, via), m),
        direct: null,
        peer: null,
        close: () => path.close(),
      };
    },
  };
}

async function sample(path: FullPath, t: Target, m: (what: string) => string): Promise<Record<string, number>> {
  const pids = { runner: process.pid, gateway: path.gatewayPid(), agent: path.agentPid() };
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, rssBytes(pid)]));
  const written0 = (await upstreamStats(path.upstream)).blobBytesWritten;
  const res = await request(`${t.origin}${t.prefix}/bench/blob?bytes=${GiB}`, { dispatcher: t.dispatcher, headers: t.headers, bodyTimeout: 0 });
  if (res.statusCode !== 200) throw new Error(`paused reader: HTTP ${res.statusCode}`);
  // Read nothing; wait until the upstream stops writing.
  let last = -1;
  let since = Date.now();
  const stalled = await untilStats(
    path.upstream,
    'the upstream writer to stall',
    (s) => {
      if (s.blobBytesWritten !== last) {
        last = s.blobBytesWritten;
        since = Date.now();
        return false;
      }
      return Date.now() - since >= STALL_MS;
    },
    120_000,
  );
  const growth = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, (rssBytes(pid) - before[k]!) / MiB]));
  res.body.destroy();
  return {
    [m('max-rss-growth')]: Math.max(...Object.values(growth)),
    [m('gateway-rss-growth')]: growth.gateway!,
    [m('agent-rss-growth')]: growth.agent!,
    [m('runner-rss-growth')]: growth.runner!,
    [m('bytes-in-flight')]: (stalled.blobBytesWritten - written0) / MiB,
  };
}
