// `pipeops-tunnel status` for the local agent: its /health, /ready and
// /metrics (agent.port), read and summed up.
import type { CheckResult } from './report.ts';
import { describeError } from './gateway-route.ts';
import { byLabel, metric, parseMetrics, type Sample } from './prom-text.ts';

/** What the agent's health port says (null: the agent did not say). */
export interface AgentStatus {
  mode: 'agent';
  /** The health port's URL. */
  agent: string;
  /** Healthy and ready. */
  ok: boolean;
  /** Why the agent could not be read at all. */
  error: string | null;
  healthy: boolean | null;
  ready: boolean | null;
  /** `/ready`'s reason when not ready (`tunnel backoff`, `apiServer: …`). */
  reason: string | null;
  tunnel: { state: string | null; connected: boolean | null; rttMs: number | null };
  connects: number | null;
  reconnects: number | null;
  /** Failed dials by reason (`pipeops_tunnel_connect_failures_total`). */
  failures: Record<string, number>;
  apiServer: { reachable: boolean | null; detail: string; upstreamErrors: Record<string, number> };
  uptimeSeconds: number | null;
}

/** One request's deadline, in ms. */
const TIMEOUT_MS = 5_000;

async function get(base: URL, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(new URL(path, base), { signal: AbortSignal.timeout(TIMEOUT_MS) });
  return { status: res.status, text: await res.text() };
}

/** Reads the agent at `base`. Never throws: an unreachable agent is a status with `error`. */
export async function agentStatus(base: URL): Promise<AgentStatus> {
  const s: AgentStatus = {
    mode: 'agent',
    agent: base.origin,
    ok: false,
    error: null,
    healthy: null,
    ready: null,
    reason: null,
    tunnel: { state: null, connected: null, rttMs: null },
    connects: null,
    reconnects: null,
    failures: {},
    apiServer: { reachable: null, detail: 'not known', upstreamErrors: {} },
    uptimeSeconds: null,
  };
  let health: { status: number; text: string };
  try {
    health = await get(base, '/health');
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    s.error = `cannot reach the agent at ${base.origin}: ${describeError(cause ?? err)}`;
    return s;
  }
  s.healthy = health.status === 200;
  try {
    const ready = await get(base, '/ready');
    const body = JSON.parse(ready.text) as { ready?: unknown; reason?: unknown };
    s.ready = ready.status === 200 && body.ready === true;
    if (typeof body.reason === 'string') s.reason = body.reason;
  } catch (err) {
    s.reason = `/ready unreadable: ${describeError(err)}`;
  }
  let samples: Sample[] = [];
  try {
    const m = await get(base, '/metrics');
    if (m.status === 200) samples = parseMetrics(m.text);
  } catch {
    // the rest of the status stands without metrics
  }
  const states = byLabel(samples, 'pipeops_tunnel_connection_state', 'state');
  s.tunnel.state = Object.entries(states).find(([, v]) => v === 1)?.[0] ?? null;
  if (s.tunnel.state !== null) s.tunnel.connected = s.tunnel.state === 'connected';
  const rtt = metric(samples, 'pipeops_tunnel_session_rtt_seconds');
  // 0 until the session's first ping is answered.
  if (rtt !== undefined && rtt > 0 && s.tunnel.connected === true) s.tunnel.rttMs = Math.round(rtt * 1e6) / 1e3;
  s.connects = metric(samples, 'pipeops_tunnel_connects_total') ?? null;
  s.reconnects = metric(samples, 'pipeops_tunnel_reconnects_total') ?? null;
  s.failures = byLabel(samples, 'pipeops_tunnel_connect_failures_total', 'reason');
  s.apiServer.upstreamErrors = byLabel(samples, 'pipeops_tunnel_k8s_upstream_errors_total', 'reason');
  const started = metric(samples, 'process_start_time_seconds');
  if (started !== undefined) s.uptimeSeconds = Math.max(0, Date.now() / 1000 - started);

  // /ready names the first thing missing: the tunnel, then the credentials (`kubernetes:`), then the API server (`apiServer:`).
  if (s.ready === true) {
    s.apiServer.reachable = true;
    s.apiServer.detail = "reachable: the agent's last check succeeded";
  } else if (s.reason !== null && /^(apiServer|kubernetes): /.test(s.reason)) {
    s.apiServer.reachable = false;
    s.apiServer.detail = `not reachable: ${s.reason.replace(/^(apiServer|kubernetes): /, '')}`;
  } else {
    s.apiServer.detail = '/ready names the tunnel first: not known while the tunnel is down';
  }
  s.ok = s.healthy && s.ready === true;
  return s;
}

const DOCTOR_FIX = "`pipeops-tunnel doctor` with the agent's configuration checks each step and says what to fix; the agent's log names the last failure";

/** The status as rows for the text output. */
export function agentRows(s: AgentStatus): CheckResult[] {
  if (s.error !== null) {
    return [
      {
        id: 'agent',
        title: 'agent',
        status: 'fail',
        detail: s.error,
        fix: 'is the agent running? --agent takes the URL of its health port (agent.port, default 8080)',
      },
    ];
  }
  const rows: CheckResult[] = [
    s.healthy === true
      ? { id: 'health', title: 'health', status: 'pass', detail: 'the process is healthy (/health 200)' }
      : {
          id: 'health',
          title: 'health',
          status: 'fail',
          detail: 'the process reports itself unhealthy (/health)',
          fix: 'restart the agent; its log says what failed',
        },
    s.ready === true
      ? { id: 'ready', title: 'ready', status: 'pass', detail: 'ready (/ready 200)' }
      : { id: 'ready', title: 'ready', status: 'fail', detail: `not ready: ${s.reason ?? 'no reason given'}`, fix: DOCTOR_FIX },
  ];
  const failures = Object.entries(s.failures)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${String(v)}`);
  const counts = `connects ${String(s.connects ?? '?')}, reconnects ${String(s.reconnects ?? '?')}; failed dials: ${failures.length > 0 ? failures.join(', ') : 'none'}`;
  rows.push(
    s.tunnel.connected === true
      ? { id: 'tunnel', title: 'tunnel', status: 'pass', detail: `connected${s.tunnel.rttMs !== null ? ` (RTT ${String(s.tunnel.rttMs)} ms)` : ''}; ${counts}` }
      : { id: 'tunnel', title: 'tunnel', status: 'fail', detail: `${s.tunnel.state ?? 'state unknown'}; ${counts}`, fix: DOCTOR_FIX },
  );
  const upstream = Object.entries(s.apiServer.upstreamErrors)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${String(v)}`);
  const errors = upstream.length > 0 ? `\nrunner requests that failed upstream: ${upstream.join(', ')}` : '';
  rows.push(
    s.apiServer.reachable === true
      ? { id: 'apiserver', title: 'API server', status: 'pass', detail: `${s.apiServer.detail}${errors}` }
      : s.apiServer.reachable === false
        ? {
            id: 'apiserver',
            title: 'API server',
            status: 'fail',
            detail: `${s.apiServer.detail}${errors}`,
            fix: '`pipeops-tunnel doctor` checks the credentials, the API server and RBAC',
          }
        : { id: 'apiserver', title: 'API server', status: 'skip', detail: `${s.apiServer.detail}${errors}` },
  );
  return rows;
}
