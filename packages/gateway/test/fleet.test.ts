// Gateway replicas sharing a registry in a real redis-server: a runner
// request on a replica without the tunnel is served through the replica
// holding it, on every route; Redis going away degrades to clear 503s and
// comes back; the later of two claims for one cluster wins on every replica.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { request } from 'undici';
import WebSocket from 'ws';
import { createAgent, type Agent } from '@pipeops/tunnel-agent';
import { createSession, type Session } from '@pipeops/tunnel-mux';
import { SUBPROTOCOL, requestOverStream, websocketDuplex } from '@pipeops/tunnel-protocol';
import {
  FAKE_GIT_VERSION,
  KUBE_PATH,
  collectLogs,
  startKubePath,
  startRedisServer,
  testCertificates,
  waitFor,
  type KubePath,
  type RedisServer,
  testAgentOptions,
} from '@pipeops/tunnel-testkit';
import { Registry } from 'prom-client';
import { createGateway, type Gateway, type GatewayOptions, type TokensConfig } from '../src/index.ts';

const SECRET = 'replica-secret-for-tests-0123456789';
const ADMIN = 'fleet-admin-token-0123456789';
const tokens: TokensConfig = {
  agents: [{ cluster: KUBE_PATH.cluster, token: KUBE_PATH.agentToken }],
  runners: [{ id: 'r1', token: KUBE_PATH.runnerToken, clusters: [KUBE_PATH.cluster] }],
  admins: [{ token: ADMIN }],
};

function fleetOptions(redis: RedisServer): Pick<GatewayOptions, 'fleet'> {
  return {
    fleet: {
      redisUrl: redis.url,
      secret: SECRET,
      peerCa: testCertificates().caCert,
      advertiseUrl: (port) => `https://127.0.0.1:${port}`,
      // Shorter than the defaults so the tests see a dead replica's claims lapse quickly.
      heartbeatMs: 200,
      leaseMs: 1_000,
      verifyMs: 500,
    },
  };
}

interface Replica {
  gateway: Gateway;
  url: string;
  logs: ReturnType<typeof collectLogs>;
}

/** A second replica (same certificate, tokens and Redis), without an agent. */
async function startReplica(t: TestContext, redis: RedisServer): Promise<Replica> {
  const certs = testCertificates();
  const logs = collectLogs();
  const gateway = createGateway(
    {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: certs.cert, key: certs.key },
      tokens,
      drainTimeoutMs: 1_000,
      handshakeTimeoutMs: 5_000,
      ...fleetOptions(redis),
    },
    { logger: logs.logger('debug'), registry: new Registry() },
  );
  const { port } = await gateway.start();
  t.after(() => gateway.close(500));
  return { gateway, url: `https://127.0.0.1:${port}`, logs };
}

interface Fleet {
  redis: RedisServer;
  a: KubePath<Agent>;
  b: Replica;
}

/** Redis, replica A with the agent of cluster c1 (and the fake API server), replica B without; B knows A holds c1. */
async function startFleet(t: TestContext, o: { agentReconnectMs?: { intervalMs: number; maxIntervalMs: number } } = {}): Promise<Fleet> {
  const redis = await startRedisServer(t);
  const a = await startKubePath(t, {
    createAgent,
    agentToken: KUBE_PATH.agentToken,
    closeGraceMs: 500,
    gateway: { tokens, ...fleetOptions(redis) },
    ...(o.agentReconnectMs !== undefined ? { reconnect: o.agentReconnectMs } : {}),
  });
  const b = await startReplica(t, redis);
  await waitFor(async () => (await get(a, b.url, '/version')).statusCode === 200, { what: 'replica B to find the owner of c1' });
  return { redis, a, b };
}

function get(path: KubePath<Agent>, base: string, apiPath: string, token: string = KUBE_PATH.runnerToken, signal?: AbortSignal): ReturnType<typeof request> {
  return request(`${base}/k8s/clusters/${KUBE_PATH.cluster}${apiPath}`, {
    dispatcher: path.dispatcher,
    headers: { authorization: `Bearer ${token}` },
    ...(signal === undefined ? {} : { signal }),
  });
}

/** Calls of `command` Redis has run so far, scripts' calls included (INFO commandstats, through redis-cli). */
function redisCalls(port: number, command: string): number {
  const r = spawnSync('redis-cli', ['-p', String(port), 'INFO', 'commandstats'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `redis-cli: ${r.stderr}`);
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(r.stdout)?.[1] ?? 0);
}

async function text(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r) s += String(c);
  return s;
}

/** A mux session on B's /ws/runner, as tunnel-client dials it. */
async function runnerSession(t: TestContext, url: string): Promise<Session> {
  const ws = new WebSocket(`${url.replace('https:', 'wss:')}/ws/runner?cluster=${KUBE_PATH.cluster}`, [SUBPROTOCOL], {
    ca: testCertificates().caCert,
    headers: { authorization: `Bearer ${KUBE_PATH.runnerToken}` },
    perMessageDeflate: false,
  });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  const session = createSession(websocketDuplex(ws), { client: true, keepAliveIntervalMs: 0 });
  t.after(() => session.destroy());
  return session;
}

test('a replica without the tunnel serves /k8s/clusters, /ws/runner and a WATCH through the replica that holds it', async (t) => {
  const { a, b } = await startFleet(t);
  const res = await get(a, b.url, '/version');
  assert.equal(res.statusCode, 200);
  assert.equal((JSON.parse(await text(res.body)) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  const id = String(res.headers['x-pipeops-request-id']);
  // One audit record, on the replica the runner reached, with the request id the agent logged too.
  await waitFor(() => b.logs.records.find((r) => r.event === 'audit' && r.requestId === id && r.status === 200), { what: "B's audit record" });
  await waitFor(() => a.agentLogs.records.find((r) => r.requestId === id), { what: "the agent's record of the same request" });
  assert.equal(a.gatewayLogs.records.filter((r) => r.event === 'audit' && r.requestId === id).length, 0, 'the owner relays bytes and records nothing twice');

  // /ws/runner: a mux stream per request, spliced through both replicas.
  const session = await runnerSession(t, b.url);
  const viaWs = await requestOverStream(session.open(), { method: 'GET', path: '/version', headers: { host: 'cluster' } });
  assert.equal(viaWs.response.statusCode, 200);
  assert.match(await text(viaWs.response), new RegExp(FAKE_GIT_VERSION));

  // A WATCH through B: events flow as they happen; the runner giving up cancels it at the API server.
  const gone = new AbortController();
  const watch = await get(a, b.url, '/api/v1/namespaces/default/pods?watch=1', KUBE_PATH.runnerToken, gone.signal);
  assert.equal(watch.statusCode, 200);
  await a.fake.watch.waitForWatchers();
  a.fake.watch.emit({ metadata: { name: 'through-two-replicas' } });
  const [first] = (await once(watch.body, 'data')) as [Buffer];
  assert.match(String(first), /through-two-replicas/);
  gone.abort();
  await a.fake.aborted.wait((r) => r.path.includes('watch=1'));

  // /v1/clusters on either replica shows the cluster once, held by A.
  for (const base of [b.url, a.gatewayUrl]) {
    const list = await request(`${base}/v1/clusters`, { dispatcher: a.dispatcher, headers: { authorization: `Bearer ${ADMIN}` } });
    const { clusters } = JSON.parse(await text(list.body)) as { clusters: Array<{ cluster: string; replica: { id: string; url: string } }> };
    assert.deepEqual(
      clusters.map((c) => [c.cluster, c.replica.id, c.replica.url]),
      [[KUBE_PATH.cluster, a.gateway.replicaId, a.gatewayUrl]],
      base,
    );
  }
  const secrets = [SECRET, KUBE_PATH.runnerToken, KUBE_PATH.agentToken, ADMIN];
  for (const logText of [b.logs.text(), a.gatewayLogs.text()]) for (const s of secrets) assert.ok(!logText.includes(s), 'a secret reached a log line');
});

test("a replica routing to another's tunnel asks Redis for the owner about once a second, not once per request", async (t) => {
  const { redis, a, b } = await startFleet(t);
  const before = redisCalls(redis.port, 'get');
  const requests = 200;
  for (let i = 0; i < requests; i++) {
    const res = await get(a, b.url, '/version');
    assert.equal(res.statusCode, 200);
    await text(res.body);
  }
  // Asked per request, the owner lookup alone (a script reading the cluster's and the replica's keys) would be 2 GETs each: 400.
  const gets = redisCalls(redis.port, 'get') - before;
  assert.ok(gets < requests / 4, `${gets} GETs in Redis for ${requests} requests through B`);
});

test('a replica link without the replica secret is refused with 401', async (t) => {
  const { a, b } = await startFleet(t);
  for (const auth of [undefined, 'Bearer not-the-secret-0123456789']) {
    const ws = new WebSocket(`${b.url.replace('https:', 'wss:')}/v1/replica`, ['pipeops-tunnel-replica.v1'], {
      ca: testCertificates().caCert,
      perMessageDeflate: false,
      ...(auth === undefined ? {} : { headers: { authorization: auth } }),
    });
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(res.statusCode, 401);
    ws.on('error', () => {});
    ws.terminate();
  }
  assert.ok(b.logs.records.some((r) => r.event === 'replica_refused'));
  assert.equal((await get(a, b.url, '/version')).statusCode, 200, 'the fleet still works');
});

test('when the agent leaves, the other replica answers 503 with Retry-After instead of waiting', async (t) => {
  const { a, b } = await startFleet(t);
  await a.agent.close(200);
  await waitFor(async () => (await get(a, b.url, '/version')).statusCode === 503, { what: 'B to answer 503' });
  const res = await get(a, b.url, '/version');
  assert.equal(res.statusCode, 503);
  assert.equal(res.headers['retry-after'], '1');
  assert.deepEqual(JSON.parse(await text(res.body)), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    reason: 'ServiceUnavailable',
    code: 503,
    message: `cluster ${KUBE_PATH.cluster} is not connected`,
  });
});

test('with Redis gone the owner keeps serving its tunnel, the other replica answers a clear 503, /ready says degraded; all is back with Redis', async (t) => {
  const { redis, a, b } = await startFleet(t);
  await redis.kill();
  await waitFor(async () => (await get(a, b.url, '/version')).statusCode === 503, { what: 'B to answer 503 without Redis' });
  const refused = await get(a, b.url, '/version');
  assert.equal(refused.headers['retry-after'], '1');
  assert.match((JSON.parse(await text(refused.body)) as { message: string }).message, /fleet registry cannot be asked/);
  assert.equal((await get(a, a.gatewayUrl, '/version')).statusCode, 200, 'the owner serves the tunnel it holds');
  await waitFor(
    async () => {
      const ready = await request(`${b.url}/ready`, { dispatcher: a.dispatcher });
      const body = JSON.parse(await text(ready.body)) as { status: string; reason?: string };
      return ready.statusCode === 200 && body.status === 'degraded' && /Redis/.test(body.reason ?? '');
    },
    { what: "B's /ready to say degraded" },
  );
  await redis.restart();
  // Redis came back empty: A claims its tunnel again, and B finds it.
  await waitFor(async () => (await get(a, b.url, '/version')).statusCode === 200, { timeoutMs: 10_000, what: 'B to reach c1 again after Redis came back' });
  await waitFor(
    async () => {
      const ready = await request(`${b.url}/ready`, { dispatcher: a.dispatcher });
      return (JSON.parse(await text(ready.body)) as { status: string }).status === 'ready';
    },
    { what: "B's /ready to say ready again" },
  );
});

test('two agents of one cluster on two replicas: the later one wins on every replica, the earlier stands by refused with 409, and takes over when the later leaves', async (t) => {
  const { a, b } = await startFleet(t, { agentReconnectMs: { intervalMs: 50, maxIntervalMs: 200 } });
  assert.equal(a.gateway.clusters()[0]?.agentId, 'a1');
  // A second agent for c1 (same token, its own id), dialing B.
  const logs = collectLogs();
  const second = createAgent(
    testAgentOptions({
      apiUrl: b.url,
      token: KUBE_PATH.agentToken,
      caFile: a.gatewayCaFile,
      kubeconfig: `${a.dir}/agent-kubeconfig.yaml`,
      agentId: 'a2',
      name: 'second',
      clusterName: KUBE_PATH.cluster,
      reconnect: { intervalMs: 100, maxIntervalMs: 1_000, enabled: false },
    }) as Parameters<typeof createAgent>[0],
    { logger: logs.logger('debug'), registry: new Registry() },
  );
  t.after(() => second.close(200));
  await second.start();
  await waitFor(() => b.gateway.clusters().length === 1, { what: 'the second agent on B' });
  await waitFor(() => a.gateway.clusters().length === 0, { what: 'A to give up its session for c1' });
  assert.ok(a.gatewayLogs.records.some((r) => r.event === 'fleet_cluster_lost'));
  // The first agent dials A again and again: A asks Redis who holds c1, finds the session that replaced it (on B), refuses.
  const held = (): number => a.gatewayLogs.records.filter((r) => r.event === 'agent_refused' && r.code === 'PT_ERR_CLUSTER_HELD').length;
  await waitFor(() => held() >= 3, { what: 'three dials of the replaced agent refused by A', timeoutMs: 15_000 });
  for (const base of [a.gatewayUrl, b.url]) {
    const list = await request(`${base}/v1/clusters`, { dispatcher: a.dispatcher, headers: { authorization: `Bearer ${ADMIN}` } });
    const { clusters } = JSON.parse(await text(list.body)) as { clusters: Array<{ agentId: string; replica: { id: string } }> };
    assert.deepEqual(
      clusters.map((c) => [c.agentId, c.replica.id]),
      [['a2', b.gateway.replicaId]],
      base,
    );
  }
  // Requests through A now reach the second agent, through B.
  assert.equal((await get(a, a.gatewayUrl, '/version')).statusCode, 200);
  // The second agent leaves: the first one takes c1 back at its next dial.
  await second.close(200);
  await waitFor(() => a.gateway.clusters()[0]?.agentId === 'a1', { what: 'a1 to hold c1 again', timeoutMs: 10_000 });
  assert.equal((await get(a, b.url, '/version')).statusCode, 200);
});
