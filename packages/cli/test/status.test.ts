// `pipeops-tunnel status` as a child process against real parts: a real
// agent's health port, and a real gateway (one, or two replicas on a real
// redis-server) with the agent connected in front of the testkit's fake API
// server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { createAgent, type Agent } from '@pipeops/tunnel-agent';
import { createGateway, type GatewayOptions, type TokensConfig } from '@pipeops/tunnel-gateway';
import {
  FAKE_GIT_VERSION,
  KUBE_PATH,
  collectLogs,
  freePort,
  kubeconfigFor,
  startKubePath,
  startRedisServer,
  testCertificates,
  waitFor,
  type KubePath,
  testAgentOptions,
} from '@pipeops/tunnel-testkit';
import { cleanEnv, runCli, runCliJson } from './helpers.ts';

const ADMIN_TOKEN = 'status-admin-token-0123456789abcdef';
const OTHER_AGENT_TOKEN = 'status-c2-agent-token-0123456789abcdef';
const TOKENS: TokensConfig = {
  agents: [
    { cluster: 'c1', token: KUBE_PATH.agentToken },
    { cluster: 'c2', token: OTHER_AGENT_TOKEN },
  ],
  runners: [{ id: 'r1', token: KUBE_PATH.runnerToken, clusters: ['c1', 'c2'] }],
  admins: [{ token: ADMIN_TOKEN }],
};

interface AgentStatus {
  ok: boolean;
  error: string | null;
  healthy: boolean | null;
  ready: boolean | null;
  reason: string | null;
  tunnel: { state: string | null; connected: boolean | null };
  connects: number | null;
  reconnects: number | null;
  failures: Record<string, number>;
  apiServer: { reachable: boolean | null; detail: string };
}
interface GatewayStatus {
  ok: boolean;
  error: string | null;
  connected: boolean;
  cluster: string;
  agent: { id: string; name: string; version: string } | null;
  lastStatus: { apiServer?: { reachable: boolean; version?: string } } | null;
  apiServer: { reachable: boolean | null; detail: string };
  replica: { id: string; url: string } | null;
  version: { status: number; gitVersion: string | null; detail: string } | null;
}

async function status<T>(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; s: T; stdout: string; stderr: string }> {
  const { json: s, ...r } = await runCliJson<T>(['status', ...args], env);
  return { ...r, s };
}

function healthUrl(agent: Agent): string {
  const a = agent.healthAddress;
  assert.ok(a !== undefined, 'the agent serves its health port');
  return `http://127.0.0.1:${String(a.port)}`;
}

function assertNoSecret(out: { stdout: string; stderr: string }, secrets: readonly string[]): void {
  for (const secret of secrets) assert.ok(!out.stdout.includes(secret) && !out.stderr.includes(secret), 'no secret is printed');
}

/** A port nothing listens on (the test kit's freePort: bound, then released). */
const closedPort = freePort;

function failuresOf(registry: Registry, reason: string): Promise<number> {
  return registry.getSingleMetricAsString('pipeops_tunnel_connect_failures_total').then((text) => {
    const m = new RegExp(`reason="${reason}"} (\\d+)`).exec(text);
    return Number(m?.[1] ?? 0);
  });
}

test("status reads a ready agent's health port: tunnel connected, one connect, API server reachable, exit 0", async (t) => {
  const path = await startKubePath(t, { createAgent });
  const r = await status<AgentStatus>(['--agent', healthUrl(path.agent)]);
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.s.ok, true);
  assert.equal(r.s.healthy, true);
  assert.equal(r.s.ready, true);
  assert.equal(r.s.reason, null);
  assert.deepEqual(r.s.tunnel.state, 'connected');
  assert.equal(r.s.tunnel.connected, true);
  assert.equal(r.s.connects, 1);
  assert.equal(r.s.reconnects, 0);
  assert.ok(
    Object.values(r.s.failures).every((n) => n === 0),
    JSON.stringify(r.s.failures),
  );
  assert.ok('network' in r.s.failures && 'auth' in r.s.failures, 'every failure reason is listed');
  assert.equal(r.s.apiServer.reachable, true);
  const text = await runCli(['status', '--agent', healthUrl(path.agent), '-o', 'text'], cleanEnv());
  assert.equal(text.code, 0);
  for (const title of ['health', 'ready', 'tunnel', 'API server']) assert.match(text.stdout, new RegExp(`^✔ ${title} `, 'm'));
  assert.match(text.stdout, /^✔ tunnel +connected.*connects 1, reconnects 0; failed dials: none$/m);
  assert.match(text.stdout, /^ready$/m);
});

test('status of an agent whose gateway is gone says not ready and why, and counts its failed dials by reason, exit 1', async (t) => {
  const path = await startKubePath(t, { createAgent, reconnect: { intervalMs: 50, maxIntervalMs: 100 } });
  await path.stopGateway();
  await waitFor(async () => (await failuresOf(path.agentRegistry, 'network')) >= 2, { timeoutMs: 10_000, what: 'two refused dials' });
  const r = await status<AgentStatus>(['--agent', healthUrl(path.agent)]);
  assert.equal(r.code, 1, r.stdout);
  assert.equal(r.s.ok, false);
  assert.equal(r.s.healthy, true);
  assert.equal(r.s.ready, false);
  assert.match(r.s.reason ?? '', /^tunnel (connecting|backoff)$/);
  assert.equal(r.s.tunnel.connected, false);
  assert.ok((r.s.failures.network ?? 0) >= 2, JSON.stringify(r.s.failures));
  assert.equal(r.s.connects, 1);
  assert.equal(r.s.apiServer.reachable, null, 'not known while the tunnel is down');
  const text = await runCli(['status', '--agent', healthUrl(path.agent), '-o', 'text'], cleanEnv());
  assert.match(text.stdout, /^✖ ready +not ready: tunnel (connecting|backoff)$/m);
  assert.match(text.stdout, /^✖ tunnel .*failed dials: .*network \d+/m);
  assert.match(text.stdout, /→ `pipeops-tunnel doctor`/);
});

test('status of an agent that cannot reach its API server names the reason, exit 1', async (t) => {
  const path = await startKubePath(t, { createAgent, gateway: { tokens: TOKENS } });
  const kubeconfig = join(path.dir, 'unreachable.kubeconfig');
  writeFileSync(kubeconfig, kubeconfigFor({ server: `https://127.0.0.1:${String(await closedPort())}`, token: path.fake.token, caData: path.fake.caCert }));
  const agent = createAgent(
    testAgentOptions({
      apiUrl: path.gatewayUrl,
      token: OTHER_AGENT_TOKEN,
      caFile: path.gatewayCaFile,
      kubeconfig,
      agentId: 'a2',
      name: 'no api',
      clusterName: 'c2',
      reconnect: { intervalMs: 100, maxIntervalMs: 500 },
    }),
    { logger: collectLogs().logger('warn'), registry: new Registry() },
  );
  t.after(() => agent.close(300));
  await agent.start();
  await waitFor(
    () => {
      const r = agent.readiness();
      return !r.ready && r.reason.startsWith('apiServer:');
    },
    { timeoutMs: 10_000, what: 'the agent to report its API server unreachable' },
  );
  const r = await status<AgentStatus>(['--agent', healthUrl(agent)]);
  assert.equal(r.code, 1);
  assert.equal(r.s.tunnel.connected, true);
  assert.equal(r.s.apiServer.reachable, false);
  assert.match(r.s.apiServer.detail, /^not reachable: .*ECONNREFUSED/);
});

test('status of an agent nobody serves exits 1 naming the URL', async () => {
  const port = await closedPort();
  const r = await status<AgentStatus>(['--agent', `http://127.0.0.1:${String(port)}`]);
  assert.equal(r.code, 1);
  assert.match(r.s.error ?? '', new RegExp(`cannot reach the agent at http://127\\.0\\.0\\.1:${String(port)}: .*ECONNREFUSED`));
});

test('status --gateway --cluster with a runner token shows the connected cluster, its agent and its last report, without printing the token, exit 0', async (t) => {
  const path = await startKubePath(t, { createAgent, gateway: { tokens: TOKENS }, agent: { pollIntervalMs: 200 } });
  await waitFor(() => path.gateway.clusters().find((c) => c.cluster === 'c1')?.lastStatus?.apiServer?.reachable === true, {
    what: "the agent's report of a reachable API server",
  });
  const r = await status<GatewayStatus>(['--gateway', path.gatewayUrl, '--cluster', 'c1', '--ca', path.gatewayCaFile], {
    PIPEOPS_RUNNER_TOKEN: KUBE_PATH.runnerToken,
  });
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.s.ok, true);
  assert.equal(r.s.connected, true);
  assert.deepEqual(r.s.agent && { id: r.s.agent.id, name: r.s.agent.name, version: r.s.agent.version }, { id: 'a1', name: 'kube path', version: '0.0.0-test' });
  assert.equal(r.s.lastStatus?.apiServer?.reachable, true);
  assert.equal(r.s.lastStatus?.apiServer?.version, FAKE_GIT_VERSION);
  assert.equal(r.s.apiServer.reachable, true);
  assert.equal(r.s.replica, null, 'a lone gateway has no replicas');
  assert.equal(r.s.version?.gitVersion, FAKE_GIT_VERSION);
  assertNoSecret(r, path.secrets);
});

test('status --gateway with an admin token shows the cluster without asking its /version', async (t) => {
  const path = await startKubePath(t, { createAgent, gateway: { tokens: TOKENS } });
  const r = await runCli(
    ['status', '--gateway', path.gatewayUrl, '--cluster', 'c1', '--ca', path.gatewayCaFile, '-o', 'text'],
    cleanEnv({ PIPEOPS_RUNNER_TOKEN: ADMIN_TOKEN }),
  );
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /^✔ cluster +connected: agent kube path \(id a1, version 0\.0\.0-test\)/m);
  assert.match(r.stdout, /^- \/version +not asked with this token/m);
  assert.match(r.stdout, /^connected$/m);
  assertNoSecret(r, [ADMIN_TOKEN]);
});

test('status --gateway for a cluster whose agent is not connected exits 1 with the 503 reason', async (t) => {
  const path = await startKubePath(t, { createAgent, gateway: { tokens: TOKENS } });
  const r = await status<GatewayStatus>(['--gateway', path.gatewayUrl, '--cluster', 'c2', '--ca', path.gatewayCaFile], {
    PIPEOPS_RUNNER_TOKEN: KUBE_PATH.runnerToken,
  });
  assert.equal(r.code, 1);
  assert.equal(r.s.connected, false);
  assert.equal(r.s.agent, null);
  assert.equal(r.s.version?.status, 503);
  assert.match(r.s.version?.detail ?? '', /cluster c2 is not connected/);
});

test("status --gateway with a wrong token exits 1 with the gateway's refusal and never prints the token", async (t) => {
  const path = await startKubePath(t, { createAgent });
  const wrong = 'wrong-status-token-0123456789abcdef';
  const r = await status<GatewayStatus>(['--gateway', path.gatewayUrl, '--cluster', 'c1', '--ca', path.gatewayCaFile, '--token', wrong]);
  assert.equal(r.code, 1);
  assert.match(r.s.error ?? '', /GET \/v1\/clusters: HTTP 401 PT_ERR_AUTH_REJECTED/);
  assertNoSecret(r, [wrong]);
});

test('status --gateway through a replica of a fleet names the replica that holds the cluster', async (t) => {
  const redis = await startRedisServer(t);
  const certs = testCertificates();
  const fleet = (): Pick<GatewayOptions, 'fleet'> => ({
    fleet: {
      redisUrl: redis.url,
      secret: 'status-replica-secret-0123456789',
      peerCa: certs.caCert,
      advertiseUrl: (port) => `https://127.0.0.1:${String(port)}`,
    },
  });
  const holder: KubePath<Agent> = await startKubePath(t, { createAgent, gateway: { tokens: TOKENS, ...fleet() } });
  const other = createGateway(
    {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: certs.cert, key: certs.key },
      tokens: TOKENS,
      drainTimeoutMs: 500,
      handshakeTimeoutMs: 5_000,
      ...fleet(),
    },
    { logger: collectLogs().logger('warn'), registry: new Registry() },
  );
  const { port } = await other.start();
  t.after(() => other.close(200));
  await waitFor(async () => (await other.allClusters()).some((c) => c.cluster === 'c1'), { what: 'the other replica to list c1' });
  const r = await status<GatewayStatus>(['--gateway', `https://127.0.0.1:${String(port)}`, '--cluster', 'c1', '--ca', holder.gatewayCaFile], {
    PIPEOPS_RUNNER_TOKEN: KUBE_PATH.runnerToken,
  });
  assert.equal(r.code, 0, r.stdout);
  assert.deepEqual(r.s.replica, { id: holder.gateway.replicaId, url: holder.gatewayUrl });
  assert.notEqual(other.replicaId, holder.gateway.replicaId);
  assert.equal(r.s.version?.gitVersion, FAKE_GIT_VERSION, '/version through the replica without the tunnel');
});

test('status refuses --agent with --gateway, and runner flags without --gateway, with exit 2', async () => {
  const both = await runCli(['status', '--agent', 'http://127.0.0.1:8080', '--gateway', 'https://127.0.0.1:1', '--cluster', 'c1']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--agent and --gateway\/--cluster exclude each other/);
  const stray = await runCli(['status', '--token', 't']);
  assert.equal(stray.code, 2);
  assert.match(stray.stderr, /--token only applies with --gateway/);
  const bad = await runCli(['status', '--agent', 'localhost:8080']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--agent must be an http:\/\/ URL/);
});
