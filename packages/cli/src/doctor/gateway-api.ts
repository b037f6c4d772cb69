// The gateway's endpoints as the doctor and `status` ask them: the agent's
// token judged by the answer to the tunnel upgrade (closed before the
// tunnel's own handshake), and for a runner or an admin `GET /v1/clusters`
// and the cluster's `/version` through `/k8s/clusters/{cluster}`.
import type { ClusterInfo } from '@pipeops/tunnel-gateway';
import { AgentHeaders, SUBPROTOCOL, TUNNEL_PATH } from '@pipeops/tunnel-protocol';
import type { CheckResult } from './report.ts';
import { answerText } from './gateway-checks.ts';
import { describeError, exchange, websocketKey, type Exchange, type GatewayRoute } from './gateway-route.ts';

/** A cluster as `GET /v1/clusters` lists it; `replica` in a fleet. */
export type ListedCluster = ClusterInfo & { replica?: { id: string; url: string } };

/** The fix of a refused agent token (the README's words). */
export const AGENT_TOKEN_FIX =
  'the token is wrong, revoked or for another cluster: compare `printf %s "$TOKEN" | sha256sum` with the token_sha256 of this cluster in the gateway\'s tokens file, and agent.cluster_name with its cluster';
/** The fix of a refused runner token. */
export const RUNNER_TOKEN_FIX = 'the token is wrong or revoked: compare `printf %s "$TOKEN" | sha256sum` with the gateway\'s tokens file (runners: or admins:)';

/**
 * The agent token against the gateway: the tunnel's WebSocket upgrade with
 * the token, the subprotocol and the cluster, exactly as the agent dials.
 * The gateway authenticates before it upgrades, so its HTTP answer is the
 * verdict: 101 (the socket is closed at once, before the tunnel's hello, so
 * no session starts and no running agent is replaced), or 401/403.
 */
export async function checkAgentToken(route: GatewayRoute, o: { token: string; cluster: string; version: string }): Promise<CheckResult> {
  const base = { id: 'token', title: 'token' };
  let ex: Exchange;
  try {
    ex = await exchange(
      route,
      {
        path: TUNNEL_PATH,
        headers: {
          authorization: `Bearer ${o.token}`,
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': websocketKey(),
          'sec-websocket-protocol': SUBPROTOCOL,
          [AgentHeaders.cluster]: o.cluster,
          [AgentHeaders.version]: o.version,
        },
      },
      { verify: true },
    );
  } catch (err) {
    return { ...base, status: 'fail', detail: `the upgrade request failed: ${describeError(err)}`, fix: 'see the TCP and TLS checks above' };
  }
  if (ex.status === 101) {
    return {
      ...base,
      status: 'pass',
      detail: `accepted for cluster ${o.cluster}: the gateway answered 101 to GET ${TUNNEL_PATH} (closed before the tunnel's hello)`,
    };
  }
  const answer = answerText(ex.status, ex.body);
  if (ex.status === 401 || ex.status === 403) return { ...base, status: 'fail', detail: `refused: ${answer}`, fix: AGENT_TOKEN_FIX };
  if (ex.status === 503)
    return { ...base, status: 'warn', detail: `not judged: ${answer}`, fix: 'the gateway is draining (a rolling update): run the doctor again in a moment' };
  return {
    ...base,
    status: 'fail',
    detail: `the gateway answered the tunnel's WebSocket upgrade with ${answer}`,
    fix: `something between this host and the gateway does not pass WebSocket upgrades on ${TUNNEL_PATH} (a proxy or load balancer), or the URL points at another server`,
  };
}

/** `GET /v1/clusters` with a runner or admin token. */
export async function listClusters(route: GatewayRoute, token: string, verify: boolean): Promise<{ ex: Exchange; clusters?: ListedCluster[] }> {
  const ex = await exchange(route, { path: '/v1/clusters', headers: { authorization: `Bearer ${token}`, accept: 'application/json' } }, { verify });
  if (ex.status !== 200) return { ex };
  const parsed = JSON.parse(ex.body) as { clusters?: unknown };
  return { ex, clusters: Array.isArray(parsed.clusters) ? (parsed.clusters as ListedCluster[]) : [] };
}

/** `GET /k8s/clusters/{cluster}/version` with a runner token: the cluster's API server, through the gateway and the agent. */
export async function clusterVersion(route: GatewayRoute, token: string, cluster: string, verify: boolean): Promise<{ ex: Exchange; gitVersion?: string }> {
  const ex = await exchange(
    route,
    { path: `/k8s/clusters/${encodeURIComponent(cluster)}/version`, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } },
    { verify },
  );
  if (ex.status !== 200) return { ex };
  const v = (JSON.parse(ex.body) as { gitVersion?: unknown }).gitVersion;
  return { ex, ...(typeof v === 'string' ? { gitVersion: v } : {}) };
}

/** What a `/k8s/clusters/{cluster}/version` answer other than 200 means, and what to do. */
export function versionFailure(status: number, body: string, cluster: string): { detail: string; fix: string } {
  const answer = answerText(status, body);
  switch (status) {
    case 401:
      return { detail: `the gateway refused the token: ${answer}`, fix: RUNNER_TOKEN_FIX };
    case 403:
      return {
        detail: `refused: ${answer}`,
        fix: `the runner token is not allowed on ${cluster} (its clusters: in the tokens file), or the API server's or the owner's policy refused the request (the message says which)`,
      };
    case 503:
      return {
        detail: `cluster ${cluster} is not connected: ${answer}`,
        fix: "start the cluster's agent (pipeops-tunnel connect) and check its /ready and its logs; `pipeops-tunnel doctor` there says why it cannot connect",
      };
    case 502:
    case 504:
      return {
        detail: `the agent did not answer: ${answer}`,
        fix: "the agent cannot reach its API server: `pipeops-tunnel status` / `doctor` on the agent's side",
      };
    default:
      return { detail: `the gateway answered ${answer}`, fix: 'check the gateway URL (a proxy or load balancer in between may answer instead)' };
  }
}

/** One line about a listed cluster's agent and its last report. */
export function describeCluster(c: Pick<ListedCluster, 'name' | 'agentId' | 'version' | 'connectedAt' | 'rttMs' | 'replica'>): string {
  const parts = [`agent ${c.name} (id ${c.agentId}, version ${c.version}), connected since ${c.connectedAt}`];
  if (c.rttMs !== null) parts.push(`RTT ${c.rttMs.toFixed(1)} ms`);
  if (c.replica !== undefined) parts.push(`held by replica ${c.replica.id} (${c.replica.url})`);
  return parts.join('; ');
}

/** The API server as the agent last reported it (`lastStatus.apiServer`). */
export function describeApiServer(c: ListedCluster): { reachable: boolean | undefined; text: string } {
  const api = c.lastStatus?.apiServer;
  if (api === undefined) return { reachable: undefined, text: 'the agent has not reported its API server yet' };
  // The agent's first report can precede its first check (its ApiHealth says so in these words, without checkedAt).
  if (!api.reachable && api.checkedAt === undefined && api.error === 'not checked yet')
    return { reachable: undefined, text: 'not checked yet (the report preceded the first check)' };
  if (api.reachable)
    return {
      reachable: true,
      text: `reachable${api.version !== undefined ? `, ${api.version}` : ''}${api.checkedAt !== undefined ? ` (checked ${api.checkedAt})` : ''}`,
    };
  return { reachable: false, text: `not reachable: ${api.error ?? 'no reason given'}${api.checkedAt !== undefined ? ` (checked ${api.checkedAt})` : ''}` };
}
