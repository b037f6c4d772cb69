import { waitFor } from '@pipeops/tunnel-testkit';
import type { Upstream } from './full-path.ts';

export interface UpstreamStats {
  watches: number;
  blobBytesWritten: number;
}

export async function upstreamStats(u: Upstream): Promise<UpstreamStats> {
  return (await (await fetch(`${u.controlUrl}/stats`)).json()) as UpstreamStats;
}

/** Asks the upstream to write one event to each of `count` random open watches. */
export async function emitEvents(u: Upstream, count: number): Promise<number> {
  const res = await fetch(`${u.controlUrl}/emit?count=${count}`, { method: 'POST' });
  return ((await res.json()) as { emitted: number }).emitted;
}

/** Polls the upstream's stats every 50 ms until `ok` holds (a measurement loop of the benchmark, not a test). */
export function untilStats(u: Upstream, what: string, ok: (s: UpstreamStats) => boolean, timeoutMs = 120_000): Promise<UpstreamStats> {
  return waitFor(
    async () => {
      const s = await upstreamStats(u);
      return ok(s) ? s : undefined;
    },
    { what: `upstream: ${what}`, timeoutMs, intervalMs: 50 },
  );
}
