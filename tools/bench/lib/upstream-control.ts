import type { Upstream } from './full-path.ts';

export interface UpstreamStats { watches: number; blobBytesWritten: number }

export async function upstreamStats(u: Upstream): Promise<UpstreamStats> {
  return (await (await fetch(`${u.controlUrl}/stats`)).json()) as UpstreamStats;
}

/** Asks the upstream to write one event to each of `count` random open watches. */
export async function emitEvents(u: Upstream, count: number): Promise<number> {
  const res = await fetch(`${u.controlUrl}/emit?count=${count}`, { method: 'POST' });
  return ((await res.json()) as { emitted: number }).emitted;
}

/** Polls the upstream's stats every 50 ms until `ok` holds (a measurement loop of the benchmark, not a test). */
export async function untilStats(u: Upstream, what: string, ok: (s: UpstreamStats) => boolean, timeoutMs = 120_000): Promise<UpstreamStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await upstreamStats(u);
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`upstream: ${what} not reached within ${timeoutMs} ms (${JSON.stringify(s)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
