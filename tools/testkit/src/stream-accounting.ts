// The agent's and the gateway's stream accounting as a test reads it from a
// registry (what /metrics serves): per kind, opened
// (`pipeops_tunnel_streams_opened_total`), closed (`pipeops_tunnel_streams_total`,
// every result) and active (`pipeops_tunnel_streams_active`).
import assert from 'node:assert/strict';
import { STREAM_RESULTS } from '@pipeops/tunnel-protocol';
import type { Registry } from 'prom-client';

export interface StreamCounts {
  opened: number;
  closed: number;
  active: number;
}

/**
 * The three numbers of each of `kinds`; each series must be exposed. A
 * `refusedOnly` kind (the agent's `unknown`: refused before its kind was
 * known) has only `opened` and the `refused` result, and is never active.
 */
export async function streamAccounting(
  registry: Registry,
  kinds: readonly string[],
  refusedOnly: readonly string[] = [],
): Promise<Record<string, StreamCounts>> {
  const metrics = await registry.getMetricsAsJSON();
  const value = (name: string, labels: Record<string, string>): number => {
    const m = metrics.find((x) => x.name === name);
    const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => String(x.labels[k]) === val));
    assert.ok(v !== undefined, `${name} ${JSON.stringify(labels)} is exposed`);
    return v.value;
  };
  const out: Record<string, StreamCounts> = {};
  for (const kind of kinds) {
    if (refusedOnly.includes(kind)) {
      out[kind] = {
        opened: value('pipeops_tunnel_streams_opened_total', { kind }),
        closed: value('pipeops_tunnel_streams_total', { kind, result: 'refused' }),
        active: 0,
      };
      continue;
    }
    out[kind] = {
      opened: value('pipeops_tunnel_streams_opened_total', { kind }),
      closed: STREAM_RESULTS.reduce((sum, result) => sum + value('pipeops_tunnel_streams_total', { kind, result }), 0),
      active: value('pipeops_tunnel_streams_active', { kind }),
    };
  }
  return out;
}

/** opened = closed + active for every kind of `counts`. */
export function assertStreamInvariant(counts: Record<string, StreamCounts>, when: string): void {
  for (const [kind, n] of Object.entries(counts))
    assert.equal(n.opened, n.closed + n.active, `${when}: ${kind} opened ${n.opened} ≠ closed ${n.closed} + active ${n.active}`);
}

/** Streams open now, all kinds together (`pipeops_tunnel_streams_active` summed). */
export async function activeStreams(registry: Registry): Promise<number> {
  return (await registry.getSingleMetric('pipeops_tunnel_streams_active')?.get())?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
}
