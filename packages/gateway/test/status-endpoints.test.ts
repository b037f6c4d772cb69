import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { connectFakeAgent } from './helpers/fake-agent.ts';
import { T, startGateway, type TestGateway } from './helpers/gateway.ts';

async function get(gw: TestGateway, path: string, token?: string): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
    request(`${gw.httpsUrl}${path}`, { ca: gw.ca, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: Buffer.concat(chunks).toString() }));
    })
      .on('error', reject)
      .end();
  });
}

test('/health is 200 and /ready is 200 while listening', async (t) => {
  const gw = await startGateway(t);
  assert.equal((await get(gw, '/health')).status, 200);
  const ready = await get(gw, '/ready');
  assert.equal(ready.status, 200);
  assert.deepEqual(JSON.parse(ready.body), { status: 'ready' });
});

test('/metrics serves the injected registry in Prometheus text, with the tunnel metric names', async (t) => {
  const gw = await startGateway(t);
  await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  const m = await get(gw, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.type ?? '', /^text\/plain/);
  assert.match(m.body, /^pipeops_tunnel_sessions 1$/m);
  assert.match(m.body, /^pipeops_tunnel_connects_total 1$/m);
  assert.match(m.body, /^pipeops_tunnel_bytes_total\{direction="in"\} [1-9]\d*$/m);
  for (const name of [
    'pipeops_tunnel_connect_failures_total',
    'pipeops_tunnel_streams_active',
    'pipeops_tunnel_streams_total',
    'pipeops_tunnel_frames_total',
    'pipeops_tunnel_resets_total',
    'pipeops_tunnel_session_rtt_seconds',
  ]) {
    assert.ok(m.body.includes(`# TYPE ${name} `), `${name} registered`);
  }
  assert.equal(m.body.includes('process_cpu_user_seconds_total'), false, 'default metrics only when asked for');
});

test('default process metrics are collected on the injected registry when collectDefaultMetrics is set', async (t) => {
  const gw = await startGateway(t, { collectDefaultMetrics: true });
  const m = await get(gw, '/metrics');
  assert.ok(m.body.includes('process_cpu_user_seconds_total'));
});

test('/v1/clusters: admin sees every cluster, a runner only its own, anyone else gets a JSON 401', async (t) => {
  const gw = await startGateway(t);
  await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2 });
  const names = (body: string): string[] => (JSON.parse(body) as { clusters: { cluster: string }[] }).clusters.map((c) => c.cluster);

  const admin = await get(gw, '/v1/clusters', T.admin);
  assert.equal(admin.status, 200);
  assert.deepEqual(names(admin.body), ['c1', 'c2']);
  const first = (JSON.parse(admin.body) as { clusters: Record<string, unknown>[] }).clusters[0] ?? {};
  assert.deepEqual(Object.keys(first).sort(), [
    'agentId',
    'cluster',
    'connectedAt',
    'labels',
    'lastStatus',
    'lastStatusAt',
    'name',
    'rttMs',
    'streamsActive',
    'version',
  ]);

  assert.deepEqual(names((await get(gw, '/v1/clusters', T.runnerC1)).body), ['c1']);
  assert.deepEqual(names((await get(gw, '/v1/clusters', T.runnerAll)).body), ['c1', 'c2']);

  for (const token of [undefined, 'bogus-token-123456', T.agentC1]) {
    const r = await get(gw, '/v1/clusters', token);
    assert.equal(r.status, 401, `token ${token === undefined ? 'none' : 'given'}`);
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'PT_ERR_AUTH_REJECTED');
  }
});
