// Per-cluster addresses: on a TLS connection whose server name is
// <cluster>.<suffix>, every request is that cluster's with the API server's own
// paths — the /k8s/clusters route without its prefix, with its auth, policy,
// audit, limits and metrics. Real TLS (the certificate's *.clusters.localhost
// SAN is verified), the real agent and the testkit's fake API server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import { createAgent } from '@pipeops/tunnel-agent';
import { FAKE_GIT_VERSION, FAKE_POD_NAMES, FAKE_SPDY_BYE, startKubePath, waitFor } from '@pipeops/tunnel-testkit';
import { baseTokens, T } from './helpers/gateway.ts';
import { startRunnerRig, status, type RunnerRig } from './runner-helpers/rig.ts';

const C1 = 'c1.clusters.localhost';

/** undici `request` on a connection whose TLS server name is `servername`, certificate checked against the gateway's CA (hostname check too, unless `anyName`). */
function sni(rig: Pick<RunnerRig, 'gatewayCa' | 'gatewayUrl'>, t: { after(fn: () => Promise<void>): void }, servername: string, o: { anyName?: boolean } = {}) {
  const dispatcher = new Agent({
    connect: { ca: rig.gatewayCa, servername, ...(o.anyName === true ? { checkServerIdentity: () => undefined } : {}) },
  });
  t.after(() => dispatcher.destroy());
  return (path: string, opts: { token?: string; method?: string; headers?: Record<string, string> } = {}) =>
    request(`${rig.gatewayUrl}${path}`, {
      dispatcher,
      method: (opts.method ?? 'GET') as 'GET',
      headers: { ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }), ...opts.headers },
    });
}

test('on c1.<suffix>, /version and /api/v1/… reach cluster c1 with no prefix, audited and counted as the /k8s/clusters route', async (t) => {
  const rig = await startRunnerRig(t);
  const get = sni(rig, t, C1);
  const version = await get('/version', { token: T.runnerC1 });
  assert.equal(version.statusCode, 200);
  assert.equal(((await version.body.json()) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  // Host is the gateway's address, as kubectl sends it with server https://GATEWAY: only the TLS server name selects the cluster.
  const pods = await get('/api/v1/namespaces/default/pods?limit=5', { token: T.runnerC1, headers: { host: rig.gatewayUrl.slice('https://'.length) } });
  assert.equal(pods.statusCode, 200);
  const list = (await pods.body.json()) as { items: Array<{ metadata: { name: string } }> };
  assert.deepEqual(
    list.items.map((p) => p.metadata.name),
    [...FAKE_POD_NAMES],
  );
  const id = String(pods.headers['x-pipeops-request-id']);
  assert.ok(
    rig.fake.requests.some((r) => r.path.startsWith('/api/v1/namespaces/default/pods')),
    'the API server got the path as sent',
  );
  const audit = await waitFor(() => rig.gw.log.records().find((r) => r.event === 'audit' && r.side === 'gateway' && r.requestId === id), {
    what: 'the gateway audit record',
  });
  assert.deepEqual(
    {
      route: audit.route,
      cluster: audit.cluster,
      runnerId: audit.runnerId,
      path: audit.path,
      verb: audit.verb,
      resource: audit.resource,
      status: audit.status,
    },
    { route: 'k8s', cluster: 'c1', runnerId: 'r1', path: '/api/v1/namespaces/default/pods', verb: 'list', resource: 'pods', status: 200 },
  );
  await waitFor(() => rig.agentLogs.find((r) => r.requestId === id && r.status === 200), { what: 'the agent record' });
  const counted = (): Promise<string> => rig.gw.registry.getSingleMetricAsString('pipeops_tunnel_runner_requests_total');
  await waitFor(async () => /\{code="2xx"\} 2$/m.test(await counted()), { what: 'both requests counted' });
  // The gateway's own names are unchanged: on localhost, /version is the prefix hint, not the cluster.
  const own = await rig.get('/version', { token: T.runnerC1 });
  assert.equal(own.statusCode, 404);
  await own.body.dump();
  const text = rig.gw.log.lines.join('') + rig.agentLogs.text();
  for (const secret of rig.secrets) assert.ok(!text.includes(secret), 'a token reached a log line');
});

test('the gateway compares the server name without regard to case, and its own paths on a cluster address are the cluster API server’s', async (t) => {
  const rig = await startRunnerRig(t);
  const upper = await sni(rig, t, 'C1.Clusters.LocalHost')('/version', { token: T.runnerC1 });
  assert.equal(upper.statusCode, 200);
  assert.equal(((await upper.body.json()) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  // /health and /metrics are the gateway's on its own name; on c1's address they go to c1 (the fake answers 404 for /health).
  const health = await sni(rig, t, C1)('/health', { token: T.runnerC1 });
  assert.equal(health.statusCode, 404);
  assert.notDeepEqual(await health.body.json(), { status: 'ok' });
  assert.ok(
    rig.fake.requests.some((r) => r.path === '/health'),
    '/health reached the API server',
  );
});

test('auth refusals on a cluster address are the /k8s/clusters route’s Status answers, and nothing reaches the API server', async (t) => {
  const rig = await startRunnerRig(t);
  const c1 = sni(rig, t, C1);
  const c2 = sni(rig, t, 'c2.clusters.localhost');
  const unauthorized = status(401, 'Unauthorized', 'a valid runner token is required (Authorization: Bearer <token>)');
  const cases = [
    { what: 'no token', go: () => c1('/api/v1/namespaces/default/secrets'), code: 401, body: unauthorized },
    { what: 'an agent token', go: () => c1('/api/v1/namespaces/default/secrets', { token: T.agentC1 }), code: 401, body: unauthorized },
    {
      what: 'a runner of another cluster',
      go: () => c2('/api/v1/namespaces/default/secrets', { token: T.runnerC1 }),
      code: 403,
      body: status(403, 'Forbidden', 'runner "r1" is not allowed to reach cluster "c2"'),
    },
    {
      what: 'a cluster that is not connected',
      go: () => c2('/api/v1/namespaces/default/secrets', { token: T.runnerAll }),
      code: 503,
      body: status(503, 'ServiceUnavailable', 'cluster c2 is not connected'),
    },
  ];
  for (const c of cases) {
    const res = await c.go();
    assert.equal(res.statusCode, c.code, c.what);
    assert.equal(res.headers['content-type'], 'application/json', c.what);
    assert.deepEqual(await res.body.json(), c.body, c.what);
  }
  assert.equal(rig.fake.requests.filter((r) => r.path.includes('secrets')).length, 0, 'nothing refused reached the API server');
  await waitFor(() => rig.gw.log.records().filter((r) => r.event === 'audit' && r.decision === 'denied' && r.rule === 'auth').length === 2, {
    what: 'the two 401s audited as denied by auth',
  });
});

test('a server name under the suffix that is not a cluster label, and a path naming another cluster, get clean Status answers', async (t) => {
  const rig = await startRunnerRig(t);
  for (const name of ['under_score.clusters.localhost', 'a.c1.clusters.localhost']) {
    // The wildcard covers one label only: a client that sends such a name has turned the hostname check off.
    const res = await sni(rig, t, name, { anyName: true })('/version', { token: T.runnerC1 });
    assert.equal(res.statusCode, 404, name);
    const body = (await res.body.json()) as { kind: string; reason: string; message: string; code: number };
    assert.deepEqual({ kind: body.kind, reason: body.reason, code: body.code }, { kind: 'Status', reason: 'NotFound', code: 404 });
    assert.match(
      body.message,
      new RegExp(`^the TLS server name "${name.replace(/\./g, '\\.')}" names no cluster: a cluster address is <cluster>\\.clusters\\.localhost`),
    );
  }
  const c1 = sni(rig, t, C1);
  // The path form on the cluster's own address: accepted for the same cluster (a path-form kubeconfig given tls-server-name) …
  const same = await c1('/k8s/clusters/c1/version', { token: T.runnerC1 });
  assert.equal(same.statusCode, 200);
  await same.body.dump();
  // … refused for another.
  const other = await c1('/k8s/clusters/c2/version', { token: T.runnerAll });
  assert.equal(other.statusCode, 400);
  assert.deepEqual(
    await other.body.json(),
    status(
      400,
      'BadRequest',
      'this connection is for cluster "c1" (TLS server name c1.clusters.localhost), but the path names cluster "c2": ' +
        "on a cluster's own address, give the API server's path (/version, /api/…)",
    ),
  );
  assert.equal(rig.fake.requests.filter((r) => r.path === '/k8s/clusters/c2/version').length, 0);
});

test('an exec upgrade (SPDY/3.1) on a cluster address becomes a raw pipe, and an unauthenticated one is refused before upgrading', async (t) => {
  const rig = await startRunnerRig(t);
  const pod = FAKE_POD_NAMES[0] ?? 'p';
  const exec = (token: string | undefined): ClientRequest =>
    https.request({
      host: '127.0.0.1',
      port: rig.gw.address.port,
      ca: rig.gw.ca,
      servername: C1,
      agent: false,
      path: `/api/v1/namespaces/default/pods/${pod}/exec?command=sh&stdin=true`,
      method: 'POST',
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        connection: 'Upgrade',
        upgrade: 'SPDY/3.1',
        'x-stream-protocol-version': 'v4.channel.k8s.io',
      },
    });
  const req = exec(T.runnerC1);
  req.end();
  const [res, socket] = (await Promise.race([
    once(req, 'upgrade'),
    once(req, 'response').then(([r]: IncomingMessage[]) => assert.fail(`answered ${String(r?.statusCode)} instead of upgrading`)),
  ])) as [IncomingMessage, Socket, Buffer];
  assert.equal(res.statusCode, 101);
  assert.equal(res.headers['x-stream-protocol-version'], 'v4.channel.k8s.io');
  let received = Buffer.alloc(0);
  socket.on('data', (c: Buffer) => {
    received = Buffer.concat([received, c]);
  });
  const payload = Buffer.from([0, 1, 2, 3, 250, 251, 13, 10]);
  socket.write(payload);
  await waitFor(() => received.length >= payload.length, { what: 'echo' });
  assert.deepEqual(received.subarray(0, payload.length), payload);
  socket.end();
  await once(socket, 'end');
  assert.equal(received.subarray(payload.length).toString(), FAKE_SPDY_BYE);
  const rec = await waitFor(() => rig.gw.log.records().find((r) => r.event === 'audit' && r.side === 'gateway' && r.upgraded === true), {
    what: 'the upgrade audit record',
  });
  assert.deepEqual(
    { route: rec.route, cluster: rec.cluster, subresource: rec.subresource, status: rec.status, bytesIn: rec.bytesIn },
    { route: 'k8s', cluster: 'c1', subresource: 'exec', status: 101, bytesIn: payload.length },
  );

  const refused = exec(undefined);
  refused.end();
  const [denied] = (await once(refused, 'response')) as [IncomingMessage];
  assert.equal(denied.statusCode, 401);
  let body = '';
  for await (const c of denied) body += String(c);
  assert.equal((JSON.parse(body) as { reason: string }).reason, 'Unauthorized');
});

test('the owner policy and the runner limits apply on a cluster address as on the path route', async (t) => {
  const path = await startKubePath(t, {
    createAgent,
    agentToken: T.agentC1,
    closeGraceMs: 1_000,
    gateway: { tokens: baseTokens, runnerLimits: { requestsPerSecond: 1, burst: 2 } },
    agent: { policy: { denyResources: ['secrets'] } },
  });
  const get = sni(path, t, C1);
  const secrets = await get('/api/v1/namespaces/default/secrets', { token: T.runnerC1 });
  assert.equal(secrets.statusCode, 403);
  const denied = (await secrets.body.json()) as { reason: string; message: string };
  assert.equal(denied.reason, 'Forbidden');
  assert.match(denied.message, /^forbidden by the cluster owner's agent policy \(rule deny_resources\)/);
  assert.equal(secrets.headers['x-pipeops-denied-by'], 'deny_resources');
  // Burst 2: the second request still starts, the third within the same second is over the rate.
  const second = await get('/version', { token: T.runnerC1 });
  await second.body.dump();
  const third = await get('/version', { token: T.runnerC1 });
  assert.equal(third.statusCode, 429);
  assert.ok(Number(third.headers['retry-after']) >= 1);
  assert.equal(((await third.body.json()) as { reason: string }).reason, 'TooManyRequests');
});

test('with clusterAddressSuffix "" a cluster server name is the gateway’s own name again', async (t) => {
  const rig = await startRunnerRig(t, { clusterAddressSuffix: '' });
  const res = await sni(rig, t, C1)('/version', { token: T.runnerC1 });
  assert.equal(res.statusCode, 404);
  const body = (await res.body.json()) as { message: string };
  assert.match(body.message, /^the gateway serves the Kubernetes API under \/k8s\/clusters\/<cluster>, not at \/version;/);
  assert.doesNotMatch(body.message, /tls-server-name/, 'no per-cluster address is offered when there are none');
  const prefixed = await sni(rig, t, C1)('/k8s/clusters/c1/version', { token: T.runnerC1 });
  assert.equal(prefixed.statusCode, 200);
  await prefixed.body.dump();
});

test('a raw TLS client with the SNI and a Host naming something else still reaches the cluster (the selector is the handshake)', async (t) => {
  const rig = await startRunnerRig(t);
  const socket = tls.connect({ host: '127.0.0.1', port: rig.gw.address.port, ca: rig.gw.ca, servername: C1 });
  await once(socket, 'secureConnect');
  socket.write(`GET /version HTTP/1.1\r\nHost: c2.clusters.localhost\r\nAuthorization: Bearer ${T.runnerC1}\r\nConnection: close\r\n\r\n`);
  let text = '';
  for await (const c of socket) text += String(c);
  assert.match(text, /^HTTP\/1\.[01] 200 /);
  assert.equal((JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
});
