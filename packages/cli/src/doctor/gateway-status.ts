// `pipeops-tunnel status --gateway URL --cluster C`: the cluster as the
// gateway lists it (`GET /v1/clusters`, admin or runner token) and its
// `/version` through the gateway (runner token).
import { proxyForTarget } from '@pipeops/tunnel-agent';
import type { OwnerPolicyReport, StatusMessage } from '@pipeops/tunnel-protocol';
import type { RunnerSettings } from '../commands/runner-flags.ts';
import { proxyFromEnv } from '../proxy-env.ts';
import { trustWith } from './agent-doctor.ts';
import { clusterVersion, describeApiServer, describeCluster, listClusters, versionFailure, type ListedCluster } from './gateway-api.ts';
import { answerText } from './gateway-checks.ts';
import { describeError, gatewayRoute } from './gateway-route.ts';
import type { CheckResult } from './report.ts';

/** What the gateway says of one cluster. */
export interface GatewayStatus {
  mode: 'gateway';
  gateway: string;
  cluster: string;
  /** The cluster is connected. */
  ok: boolean;
  /** Why the gateway could not be asked (unreachable, token refused). */
  error: string | null;
  connected: boolean;
  agent: { id: string; name: string; version: string; labels: Record<string, string>; connectedAt: string; rttMs: number | null; streamsActive: number } | null;
  lastStatus: StatusMessage | null;
  lastStatusAt: string | null;
  apiServer: { reachable: boolean | null; detail: string };
  replica: { id: string; url: string } | null;
  policy: OwnerPolicyReport | null;
  /** `/k8s/clusters/C/version` through the gateway: its HTTP status and `gitVersion`, or why it was not asked. */
  version: { status: number; gitVersion: string | null; detail: string } | null;
}

/** One step's deadline, in ms. */
const TIMEOUT_MS = 10_000;

/** Asks the gateway. Never throws: an unreachable gateway or a refused token is a status with `error`. */
export async function gatewayStatus(s: RunnerSettings, env: Record<string, string | undefined>): Promise<GatewayStatus> {
  const out: GatewayStatus = {
    mode: 'gateway',
    gateway: s.gateway.origin,
    cluster: s.cluster,
    ok: false,
    error: null,
    connected: false,
    agent: null,
    lastStatus: null,
    lastStatusAt: null,
    apiServer: { reachable: null, detail: 'not known' },
    replica: null,
    policy: null,
    version: null,
  };
  const target = new URL(s.gateway.href);
  target.protocol = s.gateway.protocol === 'https:' ? 'wss:' : 'ws:';
  let proxy: URL | undefined;
  try {
    proxy = proxyForTarget(target, proxyFromEnv(env));
  } catch (err) {
    out.error = `HTTPS_PROXY is not a URL: ${describeError(err)}`;
    return out;
  }
  const route = gatewayRoute(s.gateway, {
    proxy,
    trust: s.ca !== undefined ? trustWith(s.ca) : undefined,
    trustLabel: s.ca !== undefined ? '--ca' : 'system CAs',
    insecureSkipVerify: s.insecureSkipVerify,
    timeoutMs: TIMEOUT_MS,
  });
  let found: ListedCluster | undefined;
  let lastReport = 'none yet';
  try {
    const listed = await listClusters(route, s.token, true);
    if (listed.clusters === undefined) {
      out.error = `GET /v1/clusters: ${answerText(listed.ex.status, listed.ex.body)}`;
      return out;
    }
    found = listed.clusters.find((c) => c.cluster === s.cluster);
  } catch (err) {
    out.error = `cannot ask ${s.gateway.origin}: ${describeError(err)}`;
    return out;
  }
  if (found !== undefined) {
    out.connected = true;
    out.agent = {
      id: found.agentId,
      name: found.name,
      version: found.version,
      labels: found.labels,
      connectedAt: found.connectedAt,
      rttMs: found.rttMs,
      streamsActive: found.streamsActive,
    };
    out.lastStatus = found.lastStatus;
    out.lastStatusAt = found.lastStatusAt;
    const api = describeApiServer(found);
    lastReport = api.text;
    out.apiServer = { reachable: api.reachable ?? null, detail: `${api.text} (the agent's last report)` };
    out.replica = found.replica ?? null;
    out.policy = found.policy ?? null;
  }
  try {
    const v = await clusterVersion(route, s.token, s.cluster, true);
    if (v.ex.status === 200) {
      out.version = { status: 200, gitVersion: v.gitVersion ?? null, detail: `${v.gitVersion ?? '?'} through the gateway and the agent` };
      out.connected = true;
      // The agent's report may predate its first check; /version answering through it now settles it.
      if (out.apiServer.reachable !== true)
        out.apiServer = { reachable: true, detail: `reachable: /version answered through the gateway (the agent's last report: ${lastReport})` };
    } else if (v.ex.status === 401 && found !== undefined) {
      // An admin token lists every cluster but reaches none.
      out.version = { status: 401, gitVersion: null, detail: 'not asked with this token (an admin token does not reach clusters)' };
    } else {
      out.version = { status: v.ex.status, gitVersion: null, detail: versionFailure(v.ex.status, v.ex.body, s.cluster).detail };
    }
  } catch (err) {
    out.version = { status: 0, gitVersion: null, detail: `GET /k8s/clusters/${s.cluster}/version failed: ${describeError(err)}` };
  }
  out.ok = out.connected;
  return out;
}

/** The status as rows for the text output. */
export function gatewayRows(s: GatewayStatus): CheckResult[] {
  if (s.error !== null) {
    return [
      {
        id: 'gateway',
        title: 'gateway',
        status: 'fail',
        detail: s.error,
        fix: '`pipeops-tunnel doctor --gateway URL --cluster C` checks each step of the way to the gateway',
      },
    ];
  }
  const rows: CheckResult[] = [];
  if (s.agent !== null) {
    const c = {
      agentId: s.agent.id,
      name: s.agent.name,
      version: s.agent.version,
      connectedAt: s.agent.connectedAt,
      rttMs: s.agent.rttMs,
      ...(s.replica !== null ? { replica: s.replica } : {}),
    };
    rows.push({
      id: 'cluster',
      title: 'cluster',
      status: 'pass',
      detail: `connected: ${describeCluster(c)}${s.lastStatusAt !== null ? `\nlast status report ${s.lastStatusAt}` : ''}`,
    });
    rows.push({
      id: 'apiserver',
      title: 'API server',
      status: s.apiServer.reachable === true ? 'pass' : s.apiServer.reachable === false ? 'fail' : 'skip',
      detail: s.apiServer.detail,
      ...(s.apiServer.reachable === false ? { fix: "`pipeops-tunnel doctor` on the agent's side checks its credentials and API server" } : {}),
    });
    if (s.policy !== null) rows.push({ id: 'policy', title: 'owner policy', status: 'pass', detail: policyText(s.policy) });
  } else {
    rows.push({
      id: 'cluster',
      title: 'cluster',
      status: 'fail',
      detail: `${s.cluster} is not connected (not among the clusters this token sees)`,
      fix: "start its agent (pipeops-tunnel connect); `pipeops-tunnel doctor` on the agent's side says why it cannot connect",
    });
  }
  if (s.version !== null) {
    rows.push({
      id: 'version',
      title: '/version',
      status: s.version.status === 200 ? 'pass' : s.version.status === 401 && s.agent !== null ? 'skip' : 'fail',
      detail: s.version.detail,
    });
  }
  return rows;
}

function policyText(p: OwnerPolicyReport): string {
  const parts = [`access_as ${p.access_as ?? 'agent'}`];
  if (p.read_only === true) parts.push('read only');
  if (p.deny_subresources !== undefined && p.deny_subresources.length > 0) parts.push(`no ${p.deny_subresources.join(', ')}`);
  if (p.deny_resources !== undefined && p.deny_resources.length > 0) parts.push(`no ${p.deny_resources.join(', ')}`);
  if (p.namespaces !== undefined && p.namespaces.length > 0) parts.push(`namespaces ${p.namespaces.join(', ')}`);
  return parts.join('; ');
}
