import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { AgentHeaders, SUBPROTOCOL } from '@pipeops/tunnel-protocol';
import { startFakeGateway } from './helpers/fake-gateway.ts';
import { testCerts } from './helpers/certs.ts';
import { nextConnected, readAll, startAgent, tempFile, waitFor } from './helpers/agent.ts';

test('the agent dials wss with its headers, says hello, and reports status', async (t) => {
  const certs = testCerts();
  const token = 'agent-secret-token-0123456789';
  const gw = await startFakeGateway({ token, tls: certs });
  t.after(() => gw.close());
  const caFile = tempFile(t, 'ca.pem', certs.caCert);
  const { agent } = await startAgent(t, {
    apiUrl: gw.url,
    token,
    tls: { insecureSkipVerify: false, caFile },
    pollIntervalMs: 100,
    labels: { env: 'test' },
  });
  if (agent.state !== 'connected') await nextConnected(agent);
  assert.equal(agent.state, 'connected');
  const h = gw.upgrades[0];
  assert.ok(h !== undefined);
  assert.equal(h.authorization, `Bearer ${token}`);
  assert.equal(h[AgentHeaders.agentId], 'agent-1');
  assert.equal(h[AgentHeaders.cluster], 'c1');
  assert.equal(h[AgentHeaders.version], '0.1.0-test');
  assert.equal(h['sec-websocket-protocol'], SUBPROTOCOL);
  assert.equal(h['sec-websocket-extensions'], undefined, 'permessage-deflate is off');
  const hello = gw.messages.find((m) => m.type === 'hello');
  const policy = { access_as: 'agent', read_only: false, deny_subresources: [], deny_resources: [], namespaces: [] };
  assert.deepEqual(hello, {
    type: 'hello',
    agentId: 'agent-1',
    name: 'test agent',
    clusterName: 'c1',
    version: '0.1.0-test',
    labels: { env: 'test' },
    protocolVersion: 1,
    policy,
  });
  await waitFor(() => gw.messages.filter((m) => m.type === 'status').length >= 2, 5_000, 'two status reports');
  const status = gw.messages.find((m) => m.type === 'status');
  assert.ok(status !== undefined && status.type === 'status');
  assert.equal(typeof status.uptimeSeconds, 'number');
  assert.equal(typeof status.bytesOut, 'number');
  assert.ok(!Number.isNaN(Date.parse(status.at)));
});

test('a ping stream is echoed byte for byte and ended when the gateway ends', async (t) => {
  const certs = testCerts();
  const token = 'agent-secret-token-0123456789';
  const gw = await startFakeGateway({ token, tls: certs });
  t.after(() => gw.close());
  const { agent } = await startAgent(t, { apiUrl: gw.url, token, tls: { insecureSkipVerify: false, caFile: tempFile(t, 'ca.pem', certs.caCert) } });
  await nextConnected(agent);
  const payload = Buffer.alloc(300_000);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const s = gw.openStream({ kind: 'ping', requestId: 'r1' });
  s.end(payload);
  const echoed = await readAll(s);
  assert.equal(echoed.length, payload.length);
  assert.ok(echoed.equals(payload));
});

test('an unknown stream kind is reset and the session keeps serving other streams', async (t) => {
  const certs = testCerts();
  const token = 'agent-secret-token-0123456789';
  const gw = await startFakeGateway({ token, tls: certs });
  t.after(() => gw.close());
  const { agent, logs } = await startAgent(t, { apiUrl: gw.url, token, tls: { insecureSkipVerify: false, caFile: tempFile(t, 'ca.pem', certs.caCert) } });
  await nextConnected(agent);
  const bad = gw.openStream({ kind: 'teleport', requestId: 'r-bad' });
  const [err] = (await once(bad, 'error')) as [{ code?: string }];
  assert.equal(err.code, 'PT_ERR_MUX_STREAM_RESET');
  const garbage = gw.openStream({ kind: 'ping', requestId: 'r-ok' });
  garbage.end('still alive');
  assert.equal((await readAll(garbage)).toString(), 'still alive');
  assert.equal(agent.state, 'connected');
  assert.ok(
    logs.records().some((r) => r.level === 40 && /refused/.test(String(r.msg))),
    'the refusal is logged at warn',
  );
});

test('a gateway that never answers hello is a timeout failure and the agent keeps retrying', async (t) => {
  const token = 'agent-secret-token-0123456789';
  const gw = await startFakeGateway({ token, withholdWelcome: true });
  t.after(() => gw.close());
  const { agent, registry } = await startAgent(t, {
    apiUrl: gw.url,
    token,
    allowInsecureTransport: true,
    timeoutMs: 200,
    reconnect: { enabled: true, maxAttempts: 2, intervalMs: 10, maxIntervalMs: 20 },
  });
  await assert.rejects(agent.done, (e: unknown) => (e as { code?: string }).code === 'PT_ERR_RECONNECT_EXHAUSTED');
  assert.equal(gw.upgrades.length, 2);
  assert.match(await registry.metrics(), /pipeops_tunnel_connect_failures_total\{reason="timeout"\} 2/);
});

test('the status provider hook adds API-server fields to every status report', async (t) => {
  const token = 'agent-secret-token-0123456789';
  const gw = await startFakeGateway({ token });
  t.after(() => gw.close());
  const apiServer = { reachable: true, version: 'v1.31.0', checkedAt: new Date(0).toISOString() };
  await startAgent(t, { apiUrl: gw.url, token, allowInsecureTransport: true, statusProvider: async () => ({ apiServer }) });
  await waitFor(() => gw.messages.some((m) => m.type === 'status'), 5_000, 'a status report');
  const status = gw.messages.find((m) => m.type === 'status');
  assert.ok(status?.type === 'status');
  assert.deepEqual(status.apiServer, apiServer);
});

test('a registered handler serves its kind, and a failing handler resets only its own stream', async (t) => {
  const token = 'agent-secret-token-0123456789';
  const gw = await startFakeGateway({ token });
  t.after(() => gw.close());
  const { agent, registry } = await startAgent(t, { apiUrl: gw.url, token, allowInsecureTransport: true });
  let calls = 0;
  agent.registerStreamHandler('http', async (stream, preamble) => {
    calls++;
    if (preamble.requestId === 'boom') throw new Error('handler failed');
    stream.end(`served ${preamble.requestId}`);
    stream.resume();
  });
  await nextConnected(agent);
  const bad = gw.openStream({ kind: 'http', requestId: 'boom' });
  const [err] = (await once(bad, 'error')) as [{ code?: string }];
  assert.equal(err.code, 'PT_ERR_MUX_STREAM_RESET');
  const good = gw.openStream({ kind: 'http', requestId: 'fine' });
  good.end();
  assert.equal((await readAll(good)).toString(), 'served fine');
  assert.equal(calls, 2);
  assert.equal(agent.state, 'connected');
  const m = await registry.metrics();
  assert.match(m, /pipeops_tunnel_streams_total\{kind="http",result="error"\} 1/);
});

test('a gateway speaking a newer protocol than the agent is refused, naming both versions and the side to upgrade, and dialed again at the backoff', async (t) => {
  const certs = testCerts();
  const token = 'agent-secret-token-0123456789';
  const gw = await startFakeGateway({ token, tls: certs, welcomeProtocolVersion: 99 });
  t.after(() => gw.close());
  const { agent, logs } = await startAgent(t, {
    apiUrl: gw.url,
    token,
    tls: { insecureSkipVerify: false, caFile: tempFile(t, 'ca.pem', certs.caCert) },
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 50, maxIntervalMs: 100 },
  });
  await waitFor(() => logs.records().filter((r) => r.event === 'protocol_mismatch').length >= 2, 10_000, 'two refused handshakes');
  const refusal = logs.records().find((r) => r.event === 'protocol_mismatch');
  assert.equal(refusal?.code, 'PT_ERR_PROTOCOL_VERSION');
  assert.equal(refusal?.msg, 'gateway fake speaks protocol 99, agent 0.1.0-test speaks 1: upgrade the agent');
  assert.equal(refusal?.level, 50, 'logged as an error');
  assert.notEqual(agent.state, 'connected');
});

test('a gateway whose welcome names no protocol version (one before the field) is taken as protocol 1', async (t) => {
  const certs = testCerts();
  const token = 'agent-secret-token-0123456789';
  const gw = await startFakeGateway({ token, tls: certs });
  t.after(() => gw.close());
  const { agent } = await startAgent(t, { apiUrl: gw.url, token, tls: { insecureSkipVerify: false, caFile: tempFile(t, 'ca.pem', certs.caCert) } });
  if (agent.state !== 'connected') await nextConnected(agent);
  assert.equal(agent.state, 'connected');
});

test('the agent counts the streams it has taken and the ones it is serving', async (t) => {
  const token = 'agent-secret-token-0123456789';
  const gw = await startFakeGateway({ token });
  t.after(() => gw.close());
  const { agent } = await startAgent(t, { apiUrl: gw.url, token, allowInsecureTransport: true });
  const release = Promise.withResolvers<void>();
  const serving: Array<PromiseWithResolvers<void>> = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  let calls = 0;
  agent.registerStreamHandler('http', async (stream) => {
    serving[calls++]?.resolve();
    stream.resume();
    await release.promise;
    stream.end('done');
  });
  await nextConnected(agent);
  assert.deepEqual([agent.activeStreams, agent.streamsAccepted], [0, 0]);
  const refused = gw.openStream({ kind: 'teleport', requestId: 'r-refused' });
  await once(refused, 'error');
  const held = [gw.openStream({ kind: 'http', requestId: 'r1' }), gw.openStream({ kind: 'http', requestId: 'r2' })];
  for (const s of held) s.end();
  await Promise.all(serving.map((s) => s.promise));
  assert.deepEqual([agent.activeStreams, agent.streamsAccepted], [2, 3]);
  release.resolve();
  for (const s of held) assert.equal((await readAll(s)).toString(), 'done');
  assert.deepEqual([agent.activeStreams, agent.streamsAccepted], [0, 3]);
});
