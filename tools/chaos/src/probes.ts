// What the harness reads off the processes after a run: the stream gauges
// of gateway and agent (/metrics), the upstream's open responses, and a
// fresh request through the tunnel (recovery).
import { createHash } from 'node:crypto';
import { blobChunks } from '@pipeops/tunnel-testkit';
import { Agent, request } from 'undici';
import type { RunnerTarget } from './http-streams.ts';
import { CHAOS_CLUSTER, type Rig } from './rig.ts';

/** The non-zero series of `pipeops_tunnel_streams_active` in a Prometheus text exposition, as `{labels} value`. */
export function activeSeries(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('pipeops_tunnel_streams_active')) continue;
    if (line.startsWith('pipeops_tunnel_streams_active_')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v) && v !== 0) out.push(line.slice('pipeops_tunnel_streams_active'.length));
  }
  return out;
}

/** Sum of `pipeops_tunnel_streams_active` over its labels in a Prometheus text exposition. */
export function streamsActive(text: string): number {
  return seriesSum(activeSeries(text));
}

/** Sum of the values of series as {@link activeSeries} gives them. */
function seriesSum(series: readonly string[]): number {
  return series.reduce((sum, s) => sum + Number(s.slice(s.lastIndexOf(' ') + 1)), 0);
}

async function getText(url: string, dispatcher: Agent, headers: Record<string, string> = {}): Promise<string> {
  const res = await request(url, { dispatcher, headers, headersTimeout: 2_000, bodyTimeout: 2_000 });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}`);
  return text;
}

/** Open streams and responses at each hop. */
export interface OpenCounts {
  gateway: number;
  agent: number;
  upstream: number;
  /** What the upstream still has open (route and protocol). */
  upstreamOpen: string[];
  /** The gateway's and the agent's non-zero gauge series (by stream kind), so a leak says what leaked. */
  gatewaySeries: string[];
  agentSeries: string[];
}

export async function openCounts(rig: Rig, dispatcher: Agent): Promise<OpenCounts> {
  const [gw, agent, up] = await Promise.all([
    getText(`${rig.gatewayUrl}/metrics`, dispatcher),
    getText(`${rig.agentHealthUrl()}/metrics`, dispatcher),
    getText(`${rig.upstreamUrl}/chaos/stats`, dispatcher),
  ]);
  const u = JSON.parse(up) as { active: number; open: string[] };
  const gatewaySeries = activeSeries(gw);
  const agentSeries = activeSeries(agent);
  return { gateway: seriesSum(gatewaySeries), agent: seriesSum(agentSeries), upstream: u.active, upstreamOpen: u.open, gatewaySeries, agentSeries };
}

const RECOVERY_BYTES = 65_536;
const recoveryDigest = (() => {
  const h = createHash('sha256');
  for (const c of blobChunks(RECOVERY_BYTES, 'recovery')) h.update(c);
  return h.digest('hex');
})();

/** One fresh GET of a 64 KiB blob through the tunnel; true when all of it arrived. */
export async function freshRequestOk(target: RunnerTarget): Promise<boolean> {
  const dispatcher = new Agent({ connect: { ca: target.gatewayCa }, allowH2: false });
  try {
    const res = await request(`${target.gatewayUrl}/k8s/clusters/${CHAOS_CLUSTER}/chaos/blob?bytes=${RECOVERY_BYTES}&seed=recovery`, {
      dispatcher,
      headers: { authorization: `Bearer ${target.runnerToken}` },
      headersTimeout: 3_000,
      bodyTimeout: 3_000,
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    return res.statusCode === 200 && createHash('sha256').update(body).digest('hex') === recoveryDigest;
  } catch {
    return false;
  } finally {
    await dispatcher.destroy().catch(() => {});
  }
}
