// Regression tests for an agent's status report nested 32,000 deep: the
// control channel kept unknown fields as they were, and /v1/clusters then
// answered 500 for everyone (JSON.stringify overflowed) while that agent was
// connected. Only the known fields, type-checked and size-bounded, are kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OwnerPolicyReport } from '@pipeops/tunnel-protocol';
import { connectFakeAgent, type FakeAgent } from './helpers/fake-agent.ts';
import { T, startGateway, waitFor, type TestGateway } from './helpers/gateway.ts';
import { deepJsonText, httpsGet } from './hostile-helpers.ts';

const STATUS = { type: 'status', at: '2026-01-01T00:00:00.000Z', uptimeSeconds: 42, streamsActive: 3, bytesIn: 10, bytesOut: 20, rttMs: 7 };
const POLICY: OwnerPolicyReport = {
  access_as: 'runner',
  read_only: true,
  deny_subresources: ['exec', 'attach'],
  deny_resources: ['secrets'],
  namespaces: ['apps'],
};

/** Writes one raw control line (JSON text the test process could not build with JSON.stringify). */
function sendRawLine(agent: FakeAgent, text: string): void {
  assert.ok(Buffer.byteLength(text) < 64 * 1024, 'the line fits the control channel limit, so the gateway must parse it');
  agent.control.stream.write(`${text}\n`);
}

/** Resolves once the gateway has recorded the n-th status report of `cluster`. */
async function statusRecorded(gw: TestGateway, cluster: string, n = 1): Promise<void> {
  await waitFor(() => gw.log.records().filter((r) => r.event === 'agent_status' && r.cluster === cluster).length >= n, 10_000, `status ${n} of ${cluster}`);
}

async function listClusters(gw: TestGateway): Promise<Array<Record<string, unknown>>> {
  const res = await httpsGet(`${gw.httpsUrl}/v1/clusters`, gw.ca, T.admin);
  assert.equal(res.status, 200, res.body);
  return (JSON.parse(res.body) as { clusters: Array<Record<string, unknown>> }).clusters;
}

test('a status report with a field nested 32,000 deep leaves /v1/clusters answering 200, listing the known fields without the unknown one', async (t) => {
  const gw = await startGateway(t);
  const hostile = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  const other = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2 });
  other.control.send({ ...STATUS, type: 'status' });
  sendRawLine(hostile, `${JSON.stringify(STATUS).slice(0, -1)},"extra":${deepJsonText(32_000)}}`);
  await statusRecorded(gw, 'c1');
  await statusRecorded(gw, 'c2');
  const clusters = await listClusters(gw);
  assert.deepEqual(
    clusters.map((c) => c.cluster),
    ['c1', 'c2'],
    'both clusters are listed',
  );
  assert.deepEqual(clusters[0]!.lastStatus, STATUS, 'the known fields, and nothing else');
  assert.deepEqual(clusters[1]!.lastStatus, STATUS);
  // The runner view goes through the same serialisation.
  const runner = await httpsGet(`${gw.httpsUrl}/v1/clusters`, gw.ca, T.runnerC1);
  assert.equal(runner.status, 200);
  assert.equal((await httpsGet(`${gw.httpsUrl}/health`, gw.ca)).status, 200);
  assert.equal(hostile.ws.readyState, hostile.ws.OPEN, 'unknown fields are dropped, not a protocol violation');
});

test('a deeply nested policy, or one over its bounds, is dropped and the rest of the status report kept', async (t) => {
  const gw = await startGateway(t);
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  const bad = [
    `"policy":{"read_only":${deepJsonText(30_000)},"deny_subresources":[],"deny_resources":[],"namespaces":[]}`,
    `"policy":${JSON.stringify({ ...POLICY, namespaces: Array.from({ length: 257 }, (_, i) => `ns-${i}`) })}`,
    `"policy":${JSON.stringify({ ...POLICY, deny_resources: ['x'.repeat(254)] })}`,
    `"policy":${JSON.stringify({ ...POLICY, access_as: 'root' })}`,
    `"policy":${JSON.stringify({ read_only: true, deny_resources: [], namespaces: [] })}`,
  ];
  for (const [i, fragment] of bad.entries()) {
    sendRawLine(agent, `${JSON.stringify({ ...STATUS, uptimeSeconds: i }).slice(0, -1)},${fragment}}`);
    await statusRecorded(gw, 'c1', i + 1);
    const [c1] = await listClusters(gw);
    assert.deepEqual(c1!.lastStatus, { ...STATUS, uptimeSeconds: i }, `case ${i}: policy dropped, report kept`);
    assert.equal('policy' in c1!, false, `case ${i}`);
  }
});

test('a policy of the documented shape in hello and status is listed by /v1/clusters, its unknown keys dropped', async (t) => {
  const gw = await startGateway(t);
  const agent = await connectFakeAgent(t, {
    wsUrl: gw.wsUrl,
    ca: gw.ca,
    token: T.agentC1,
    hello: { policy: { ...POLICY, surprise: { deep: [1] } } as OwnerPolicyReport },
  });
  let [c1] = await listClusters(gw);
  assert.deepEqual(c1!.policy, POLICY, 'from hello');
  const lists = { deny_subresources: ['exec'], deny_resources: Array.from({ length: 256 }, (_, i) => `r${i}`), namespaces: ['n'.repeat(253)] };
  agent.control.send({ ...STATUS, type: 'status', policy: { read_only: false, ...lists } });
  await statusRecorded(gw, 'c1');
  [c1] = await listClusters(gw);
  assert.deepEqual(c1!.policy, { read_only: false, ...lists }, 'the latest, from status, at its bounds');
  assert.deepEqual((c1!.lastStatus as { policy: unknown }).policy, { read_only: false, ...lists });
});

test('strings an agent reports are cut to 253 characters and labels to the first 64', async (t) => {
  const gw = await startGateway(t);
  const labels = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${String(i).padStart(3, '0')}`, 'v'.repeat(300)]));
  const agent = await connectFakeAgent(t, {
    wsUrl: gw.wsUrl,
    ca: gw.ca,
    token: T.agentC1,
    hello: { name: 'n'.repeat(10_000), version: '1'.repeat(300), labels },
  });
  agent.control.send({ ...STATUS, type: 'status', apiServer: { reachable: false, version: 'v'.repeat(1_000), error: 'e'.repeat(5_000) } });
  await statusRecorded(gw, 'c1');
  const [c1] = await listClusters(gw);
  assert.equal((c1!.name as string).length, 253);
  assert.equal((c1!.version as string).length, 253);
  const kept = c1!.labels as Record<string, string>;
  assert.deepEqual(Object.keys(kept), Object.keys(labels).slice(0, 64));
  assert.ok(Object.values(kept).every((v) => v.length === 253));
  const api = (c1!.lastStatus as { apiServer: { version: string; error: string; reachable: boolean } }).apiServer;
  assert.deepEqual([api.reachable, api.version.length, api.error.length], [false, 253, 1_024]);
});
