import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { FAKE_GIT_VERSION, FAKE_POD_NAMES, FAKE_SPDY_BYE, kubeconfigFor, kubectl, waitFor } from '@pipeops/tunnel-testkit';
import { T } from './helpers/gateway.ts';
import { startRunnerRig, status } from './runner-helpers/rig.ts';

const C1 = '/k8s/clusters/c1';
const UNAUTHORIZED = status(401, 'Unauthorized', 'a valid runner token is required (Authorization: Bearer <token>)');

async function json(body: { text(): Promise<string> }): Promise<unknown> {
  return JSON.parse(await body.text()) as unknown;
}

test('the runner auth matrix is answered with exact Kubernetes Status bodies', async (t) => {
  const rig = await startRunnerRig(t);
  const cases: Array<{ what: string; path: string; token?: string; code: number; body: Record<string, unknown> }> = [
    { what: 'no token', path: `${C1}/matrix`, code: 401, body: UNAUTHORIZED },
    { what: 'a bad token', path: `${C1}/matrix`, token: 'not-a-token-at-all', code: 401, body: UNAUTHORIZED },
    { what: 'an agent token', path: `${C1}/matrix`, token: T.agentC1, code: 401, body: UNAUTHORIZED },
    { what: 'an admin token', path: `${C1}/matrix`, token: T.admin, code: 401, body: UNAUTHORIZED },
    {
      what: 'a runner of another cluster',
      path: '/k8s/clusters/c2/matrix',
      token: T.runnerC1,
      code: 403,
      body: status(403, 'Forbidden', 'runner "r1" is not allowed to reach cluster "c2"'),
    },
    {
      what: 'a cluster that is not connected',
      path: '/k8s/clusters/c2/matrix',
      token: T.runnerAll,
      code: 503,
      body: status(503, 'ServiceUnavailable', 'cluster c2 is not connected'),
    },
  ];
  for (const c of cases) {
    const res = await rig.get(c.path, { token: c.token });
    assert.equal(res.statusCode, c.code, c.what);
    assert.equal(res.headers['content-type'], 'application/json', c.what);
    assert.match(String(res.headers['x-pipeops-request-id']), /^[0-9a-f-]{36}$/, c.what);
    assert.deepEqual(await json(res.body), c.body, c.what);
  }
  assert.equal(rig.fake.requests.filter((r) => r.path.startsWith('/matrix')).length, 0, 'nothing refused reached the API server');
  // Counted when the exchange is over (the response's 'close'), which may trail the runner's read.
  const counted = (): Promise<string> => rig.gw.registry.getSingleMetricAsString('pipeops_tunnel_runner_requests_total');
  await waitFor(async () => /\{code="5xx"\} 1$/m.test(await counted()), { what: 'the 503 counted' });
  assert.match(await counted(), /^pipeops_tunnel_runner_requests_total\{code="4xx"\} 5$/m);
  const ok = await rig.get(`${C1}/version`, { token: T.runnerAll });
  assert.equal(ok.statusCode, 200);
  assert.equal(((await json(ok.body)) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
});

test('an agent that sends no response head in time gets the runner a 504 Status and the upstream request aborted', async (t) => {
  const rig = await startRunnerRig(t, { agentHeadTimeoutMs: 400 });
  const started = Date.now();
  const res = await rig.get(`${C1}/hang`, { token: T.runnerC1 });
  assert.equal(res.statusCode, 504);
  assert.ok(Date.now() - started >= 390);
  assert.deepEqual(await json(res.body), status(504, 'Timeout', 'the agent did not answer within 400 ms'));
  await rig.fake.aborted.wait((r) => r.path === '/hang');
});

test('each request gets an id in the response header, the gateway log record and the agent log record; no token is logged', async (t) => {
  const rig = await startRunnerRig(t);
  const res = await rig.get(`${C1}/api/v1/namespaces/default/pods?limit=5`, { token: T.runnerC1 });
  assert.equal(res.statusCode, 200);
  const body = await res.body.text();
  const id = String(res.headers['x-pipeops-request-id']);
  assert.match(id, /^[0-9a-f-]{36}$/);
  await waitFor(() => rig.gw.log.records().find((r) => r.event === 'audit' && r.side === 'gateway' && r.requestId === id), { what: 'gateway log record' });
  const rec = rig.gw.log.records().find((r) => r.event === 'audit' && r.side === 'gateway' && r.requestId === id) ?? {};
  assert.deepEqual(
    {
      runnerId: rec.runnerId,
      cluster: rec.cluster,
      method: rec.method,
      path: rec.path,
      status: rec.status,
      bytesIn: rec.bytesIn,
      bytesOut: rec.bytesOut,
      upgraded: rec.upgraded,
      route: rec.route,
    },
    {
      runnerId: 'r1',
      cluster: 'c1',
      method: 'GET',
      path: '/api/v1/namespaces/default/pods',
      status: 200,
      bytesIn: 0,
      bytesOut: Buffer.byteLength(body),
      upgraded: false,
      route: 'k8s',
    },
  );
  assert.equal(typeof rec.ms, 'number');
  await waitFor(() => rig.agentLogs.find((r) => r.requestId === id && r.status === 200), { what: 'agent log record' });
  const text = rig.gw.log.lines.join('') + rig.agentLogs.text();
  for (const secret of [T.runnerC1, T.agentC1, rig.fake.token]) assert.ok(!text.includes(secret), 'a token reached a log line');
  // A runner-chosen id that is a sane token is kept (correlation across systems).
  const own = await rig.get(`${C1}/version`, { token: T.runnerC1, headers: { 'x-pipeops-request-id': 'deploy-42.step-3' } });
  await own.body.text();
  assert.equal(own.headers['x-pipeops-request-id'], 'deploy-42.step-3');
});

test('the runner Authorization never reaches the API server; the agent credentials do', async (t) => {
  const rig = await startRunnerRig(t);
  const res = await rig.get(`${C1}/headers`, { token: T.runnerC1, headers: { 'x-custom': 'kept' } });
  assert.equal(res.statusCode, 200);
  const seen = (await json(res.body)) as { headers: Record<string, string> };
  assert.equal(seen.headers.authorization, `Bearer ${rig.fake.token}`);
  assert.equal(seen.headers['x-custom'], 'kept');
  const recorded = rig.fake.requests.filter((r) => r.path === '/headers');
  assert.equal(recorded.length, 1);
  assert.ok(recorded.every((r) => !JSON.stringify(r.rawHeaders).includes(T.runnerC1)));
});

test('a WATCH through /k8s/clusters reaches the runner event by event while the response stays open', async (t) => {
  const rig = await startRunnerRig(t);
  const res = await rig.get(`${C1}/api/v1/namespaces/default/pods?watch=1`, { token: T.runnerC1 });
  assert.equal(res.statusCode, 200);
  await rig.fake.watch.waitForWatchers();
  const it = res.body[Symbol.asyncIterator]();
  for (const name of ['p-1', 'p-2', 'p-3']) {
    rig.fake.watch.emit({ metadata: { name } });
    let line = '';
    while (!line.includes('\n')) {
      const { value, done } = await it.next();
      assert.equal(done, false, 'the watch ended early');
      line += String(value);
    }
    const ev = JSON.parse(line) as { type: string; object: { metadata: { name: string } } };
    assert.equal(ev.object.metadata.name, name);
  }
  rig.fake.watch.end();
  assert.equal((await it.next()).done, true);
});

test('absolute-form targets and CONNECT at the gateway are refused with a 400 Status', async (t) => {
  const rig = await startRunnerRig(t);
  for (const head of [
    `GET https://127.0.0.1:${rig.gw.address.port}${C1}/version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${T.runnerC1}\r\nConnection: close\r\n\r\n`,
    `CONNECT 127.0.0.1:${rig.fake.port} HTTP/1.1\r\nHost: 127.0.0.1:${rig.fake.port}\r\nAuthorization: Bearer ${T.runnerC1}\r\n\r\n`,
  ]) {
    const socket = tls.connect({ host: '127.0.0.1', port: rig.gw.address.port, ca: rig.gw.ca, servername: 'localhost' });
    await once(socket, 'secureConnect');
    socket.end(head);
    let text = '';
    for await (const c of socket) text += String(c);
    assert.match(text, /^HTTP\/1\.1 400 /, head);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    assert.equal(body.kind, 'Status');
    assert.equal(body.reason, 'BadRequest');
  }
  assert.equal(rig.fake.requests.filter((r) => r.authorized !== true || (r.path !== '/readyz' && r.path !== '/version')).length, 0);
});

test('an exec upgrade (SPDY/3.1) through /k8s/clusters becomes a raw pipe with half-close', async (t) => {
  const rig = await startRunnerRig(t);
  const pod = FAKE_POD_NAMES[0] ?? 'p';
  const req = https.request({
    host: '127.0.0.1',
    port: rig.gw.address.port,
    ca: rig.gw.ca,
    servername: 'localhost',
    path: `${C1}/api/v1/namespaces/default/pods/${pod}/exec?command=sh&stdin=true`,
    method: 'POST',
    headers: { authorization: `Bearer ${T.runnerC1}`, connection: 'Upgrade', upgrade: 'SPDY/3.1', 'x-stream-protocol-version': 'v4.channel.k8s.io' },
  });
  req.end();
  const [res, socket] = (await once(req, 'upgrade')) as [IncomingMessage, Socket, Buffer];
  assert.equal(res.statusCode, 101);
  assert.equal(res.headers['x-stream-protocol-version'], 'v4.channel.k8s.io');
  assert.match(String(res.headers['x-pipeops-request-id']), /^[0-9a-f-]{36}$/);
  let received = Buffer.alloc(0);
  socket.on('data', (c: Buffer) => {
    received = Buffer.concat([received, c]);
  });
  const payload = Buffer.from([0, 1, 2, 3, 250, 251, 13, 10]);
  socket.write(payload);
  await waitFor(() => received.length >= payload.length, { what: 'echo' });
  assert.deepEqual(received, payload);
  socket.end();
  await once(socket, 'end');
  assert.equal(received.subarray(payload.length).toString(), FAKE_SPDY_BYE);
  await waitFor(() => rig.gw.log.records().find((r) => r.event === 'audit' && r.side === 'gateway' && r.upgraded === true), { what: 'upgrade log record' });
  const rec = rig.gw.log.records().find((r) => r.event === 'audit' && r.side === 'gateway' && r.upgraded === true) ?? {};
  assert.equal(rec.status, 101);
  assert.equal(rec.bytesIn, payload.length);
});

test('kubectl reads /version through the gateway and prints the gateway 403 Status like an API server error', async (t) => {
  const rig = await startRunnerRig(t);
  const c1 = kubeconfigFor({ server: rig.clusterUrl('c1'), token: T.runnerC1, caFile: rig.gatewayCaFile });
  // `get --raw` takes a host-absolute URI (client-go RequestURI ignores the server's path), so it names the route.
  const raw = await kubectl(['get', '--raw', `${C1}/version`], { kubeconfig: c1 });
  assert.equal(raw.code, 0, raw.stderr);
  assert.equal((JSON.parse(raw.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  const version = await kubectl(['version', '-o', 'json'], { kubeconfig: c1 });
  assert.equal(version.code, 0, version.stderr);
  assert.equal((JSON.parse(version.stdout) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion, FAKE_GIT_VERSION);
  const denied = await kubectl(['get', '--raw', '/k8s/clusters/c2/version'], { kubeconfig: c1 });
  assert.notEqual(denied.code, 0);
  assert.equal(denied.stderr.trim(), 'Error from server (Forbidden): runner "r1" is not allowed to reach cluster "c2"');
});
