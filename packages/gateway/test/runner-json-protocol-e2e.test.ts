// The JSON protocol end to end: a runner's WSS to the real gateway's
// /ws/k8s, the real agent, and the testkit's fake API server (the runner rig).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import { T } from './helpers/gateway.ts';
import { RunnerClient } from './json-protocol-harness.ts';
import { startRunnerRig } from './runner-helpers/rig.ts';

const PODS = '/api/v1/namespaces/default/pods';

test('through the real gateway and agent: list, WATCH events one by one, log follow, POST, and cancel aborting the API server request', async (t) => {
  const path = await startRunnerRig(t);
  const ws = new WebSocket(`${path.gw.wsUrl}/ws/k8s?cluster=c1`, {
    ca: path.gatewayCa,
    headers: { authorization: `Bearer ${T.runnerC1}` },
    perMessageDeflate: false,
  });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  const runner = new RunnerClient(ws);

  const list = await runner.request({ id: 'list', method: 'GET', path: PODS, headers: { Authorization: `Bearer ${T.runnerC1}` } });
  assert.equal(list.status, 200);
  assert.equal((list.body as { kind: string }).kind, 'PodList');
  const listed = path.fake.requests.find((r) => r.path === PODS);
  assert.ok(listed?.authorized, "the API server saw the agent's credentials");
  assert.notEqual(listed.headers.authorization, `Bearer ${T.runnerC1}`);

  runner.send({ id: 'watch', method: 'GET', path: PODS, query: { watch: ['true'] }, stream: true });
  assert.equal((await runner.next((m) => m.id === 'watch')).status, 200);
  await path.fake.watch.waitForWatchers(1);
  for (let i = 0; i < 3; i++) {
    path.fake.watch.emit({ metadata: { name: `e${i}` } });
    const chunk = await runner.next((m) => m.id === 'watch' && 'chunk' in m, 5_000, i);
    assert.deepEqual(chunk.chunk, { type: 'ADDED', object: { metadata: { name: `e${i}` } } });
  }

  runner.send({ id: 'logs', method: 'GET', path: `${PODS}/web-0/log`, query: { follow: ['true'] }, stream: true });
  await path.fake.logs.waitForFollowers(1);
  path.fake.logs.write('hello from web-0');
  assert.equal((await runner.next((m) => m.id === 'logs' && 'chunk' in m)).chunk, 'hello from web-0');

  const created = await runner.request({
    id: 'cm',
    method: 'POST',
    path: '/api/v1/namespaces/default/configmaps',
    body: { metadata: { name: 'cfg' }, data: { a: '1' } },
  });
  assert.equal(created.status, 201);
  assert.deepEqual((created.body as { data: unknown }).data, { a: '1' });

  const aborted = path.fake.aborted.wait((r) => r.path.startsWith(PODS) && r.path.includes('watch'), 5_000);
  runner.send({ id: 'watch', cancel: true });
  assert.equal((await runner.final('watch')).cancelled, true);
  await aborted;

  // Closing the socket ends the follow too (and lets the gateway's server close).
  const logsAborted = path.fake.aborted.wait((r) => r.path.includes('/log'), 5_000);
  const closed = once(ws, 'close');
  ws.close();
  await Promise.all([closed, logsAborted]);

  const logs = path.gatewayLogs.text() + path.agentLogs.text();
  for (const secret of path.secrets) assert.ok(!logs.includes(secret), 'no secret in any log line');
});
