// A rolling update of the gateway fleet behind a real HAProxy: the replica
// holding the tunnel is closed (what SIGTERM does) while a runner keeps
// sending requests through the load balancer, each on a new connection as
// kubectl does; not one fails, and the agent ends up on the other replica,
// having opened its new tunnel before it let the old one go.
import { test, type TestContext } from 'node:test';
import { once } from 'node:events';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent as UndiciAgent, request } from 'undici';
import { createAgent } from '@pipeops/tunnel-agent';
import {
  FAKE_GIT_VERSION,
  FAKE_POD_NAMES,
  KUBE_PATH,
  collectLogs,
  kubeconfigFor,
  startFakeApiServer,
  startHaproxy,
  startRedisServer,
  testCertificates,
  waitFor,
  writeCaFile,
  testAgentOptions,
} from '@pipeops/tunnel-testkit';
import { Registry } from 'prom-client';
import { createGateway, type Gateway, type TokensConfig } from '../src/index.ts';

const tokens: TokensConfig = {
  agents: [{ cluster: KUBE_PATH.cluster, token: KUBE_PATH.agentToken }],
  runners: [{ id: 'r1', token: KUBE_PATH.runnerToken, clusters: [KUBE_PATH.cluster] }],
  admins: [],
};

async function replica(
  t: TestContext,
  redisUrl: string,
  logs: ReturnType<typeof collectLogs>,
  drainTimeoutMs = 10_000,
): Promise<{ gateway: Gateway; port: number }> {
  const certs = testCertificates();
  const gateway = createGateway(
    {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: certs.cert, key: certs.key },
      tokens,
      drainTimeoutMs,
      handshakeTimeoutMs: 5_000,
      fleet: {
        redisUrl,
        secret: 'replica-secret-for-tests-0123456789',
        peerCa: certs.caCert,
        advertiseUrl: (port) => `https://127.0.0.1:${port}`,
        heartbeatMs: 200,
        leaseMs: 1_000,
        verifyMs: 500,
      },
    },
    { logger: logs.logger('debug'), registry: new Registry() },
  );
  const { port } = await gateway.start();
  t.after(() => gateway.close(200));
  return { gateway, port };
}

/** Redis, replicas A and B behind HAProxy (`balance first`: A while it is up), the agent dialing the load balancer, on A. */
async function startRolling(t: TestContext, drainTimeoutMs = 10_000) {
  const dir = mkdtempSync(join(tmpdir(), 'pipeops-rolling-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const redis = await startRedisServer(t);
  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  const [logsA, logsB, agentLogs] = [collectLogs(), collectLogs(), collectLogs()];
  const a = await replica(t, redis.url, logsA, drainTimeoutMs);
  const b = await replica(t, redis.url, logsB, drainTimeoutMs);
  const lb = await startHaproxy(t, { dir, backends: [a.port, b.port] });

  const kubeconfig = join(dir, 'kubeconfig.yaml');
  writeFileSync(kubeconfig, kubeconfigFor({ server: fake.url, token: fake.token, caData: fake.caCert, namespace: 'default' }), { mode: 0o600 });
  const agent = createAgent(
    testAgentOptions({
      apiUrl: lb.url,
      token: KUBE_PATH.agentToken,
      caFile: writeCaFile(dir, testCertificates(), 'gateway-ca.pem'),
      kubeconfig,
      agentId: 'a1',
      name: 'rolling',
      clusterName: KUBE_PATH.cluster,
      reconnect: { intervalMs: 100, maxIntervalMs: 500 },
    }) as Parameters<typeof createAgent>[0],
    { logger: agentLogs.logger('debug'), registry: new Registry() },
  );
  t.after(() => agent.close(200));
  await agent.start();
  await waitFor(() => a.gateway.clusters().length === 1, { what: 'the agent on replica A (the first healthy one)' });
  return { fake, a, b, lb, logsA, logsB, agentLogs };
}

test('closing the replica that holds the tunnel fails no request sent through the load balancer, and the agent moves to the other replica', async (t) => {
  const { a, b, lb, logsA, logsB, agentLogs } = await startRolling(t);

  // The runner: one request after another through the load balancer, each on a connection of its own.
  const dispatcher = new UndiciAgent({ connect: { ca: testCertificates().caCert } });
  t.after(() => dispatcher.close());
  const outcomes: Array<number | string> = [];
  let running = true;
  const runner = (async () => {
    while (running) {
      try {
        const res = await request(`${lb.url}/k8s/clusters/${KUBE_PATH.cluster}/version`, {
          dispatcher,
          reset: true,
          headers: { authorization: `Bearer ${KUBE_PATH.runnerToken}` },
        });
        const body = await res.body.text();
        outcomes.push(res.statusCode === 200 && body.includes(FAKE_GIT_VERSION) ? 200 : `${res.statusCode} ${body}`);
      } catch (err) {
        outcomes.push(`error ${(err as Error).message}`);
      }
    }
  })();
  await waitFor(() => outcomes.length >= 20, { what: 'the runner under way' });

  // The roll: A drains and exits while the runner keeps going.
  const closedA = a.gateway.close(10_000);
  await waitFor(() => b.gateway.clusters().length === 1, { timeoutMs: 10_000, what: 'the agent on replica B' });
  await closedA;
  const atClose = outcomes.length;
  await waitFor(() => outcomes.length >= atClose + 20, { what: 'requests after the roll' });
  running = false;
  await runner;

  const failed = outcomes.filter((o) => o !== 200);
  const trail = (logs: typeof logsA): string =>
    JSON.stringify(
      logs.records.filter((r) => /fleet|replica|agent_|gateway_/.test(String(r.event))).map((r) => [r.time, r.event, r.url ?? r.why ?? r.code ?? '']),
    );
  assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} requests failed during the roll\nA ${trail(logsA)}\nB ${trail(logsB)}`);
  assert.ok(
    agentLogs.records.some((r) => r.event === 'tunnel_handover'),
    'the agent kept its old tunnel while it dialed the new one',
  );
  assert.ok(logsA.records.some((r) => r.event === 'gateway_handover'));
});

test('a WATCH through the replica being closed keeps its events flowing while the agent moves, and ends with an error at the drain deadline, never silently', async (t) => {
  const { fake, a, b } = await startRolling(t, 1_500);
  const dispatcher = new UndiciAgent({ connect: { ca: testCertificates().caCert } });
  t.after(() => dispatcher.close());
  const watch = await request(`https://127.0.0.1:${a.port}/k8s/clusters/${KUBE_PATH.cluster}/api/v1/namespaces/default/pods?watch=1`, {
    dispatcher,
    headers: { authorization: `Bearer ${KUBE_PATH.runnerToken}` },
  });
  assert.equal(watch.statusCode, 200);
  let text = '';
  const ended = new Promise<string>((resolve) => {
    watch.body.on('data', (c: Buffer) => {
      text += String(c);
    });
    watch.body.on('error', (err: Error) => resolve(`error: ${err.message}`));
    watch.body.on('end', () => resolve('end'));
  });
  await fake.watch.waitForWatchers();
  fake.watch.emit({ metadata: { name: 'before-the-roll' } });
  await waitFor(() => text.includes('before-the-roll'), { what: 'the first event' });

  const closedA = a.gateway.close(1_500);
  await waitFor(() => b.gateway.clusters().length === 1, { timeoutMs: 10_000, what: 'the agent on replica B' });
  // The agent has moved; the WATCH still runs on A's old session until A's drain deadline.
  fake.watch.emit({ metadata: { name: 'after-the-agent-moved' } });
  await waitFor(() => text.includes('after-the-agent-moved'), { what: 'an event after the agent moved' });
  await closedA;
  const how = await ended;
  assert.match(how, /^error/, 'a WATCH cut at the drain deadline ends with an error the runner sees (kubectl re-watches), not a clean end');
});

test('an exec session through the replica being closed keeps echoing while the agent moves, and is cut at the drain deadline', async (t) => {
  const { a, b } = await startRolling(t, 1_500);
  const req = https.request({
    host: '127.0.0.1',
    port: a.port,
    ca: testCertificates().caCert,
    servername: 'localhost',
    method: 'POST',
    path: `/k8s/clusters/${KUBE_PATH.cluster}/api/v1/namespaces/default/pods/${FAKE_POD_NAMES[0]}/exec?command=sh&stdin=true`,
    headers: { authorization: `Bearer ${KUBE_PATH.runnerToken}`, connection: 'Upgrade', upgrade: 'SPDY/3.1', 'x-stream-protocol-version': 'v4.channel.k8s.io' },
  });
  req.end();
  const [res, socket] = (await once(req, 'upgrade')) as [IncomingMessage, Socket, Buffer];
  assert.equal(res.statusCode, 101);
  let received = '';
  socket.on('data', (c: Buffer) => {
    received += String(c);
  });
  const closed = once(socket, 'close');
  socket.write('before-the-roll');
  await waitFor(() => received.includes('before-the-roll'), { what: 'the first echo' });

  const closedA = a.gateway.close(1_500);
  await waitFor(() => b.gateway.clusters().length === 1, { timeoutMs: 10_000, what: 'the agent on replica B' });
  socket.write('after-the-agent-moved');
  await waitFor(() => received.includes('after-the-agent-moved'), { what: 'an echo after the agent moved' });
  await closedA;
  await closed;
  assert.ok(!received.includes('bye'), 'the session was cut at the deadline, not ended as if the command had finished');
});
