import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, TunnelError } from '@pipeops/tunnel-protocol';
import { defaultGatewayOptions } from '../src/config.ts';
import { connectFakeAgent, dialAgentSocket, pingEcho } from './helpers/fake-agent.ts';
import { T, startGateway, waitFor } from './helpers/gateway.ts';

test('an agent that says hello gets welcome and its cluster is listed with the hello details', async (t) => {
  const gw = await startGateway(t);
  const connected = once(gw.gateway, 'agent-connected');
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, hello: { agentId: 'a-1', name: 'vm-1', labels: { tier: 'gold' } } });
  assert.deepEqual(await connected, ['c1']);
  assert.equal(agent.welcome?.type, 'welcome');
  assert.equal(typeof agent.welcome?.sessionId, 'string');
  assert.equal(agent.ws.protocol, 'pipeops-tunnel.v1');
  const [info] = gw.gateway.clusters();
  assert.equal(info?.cluster, 'c1');
  assert.equal(info?.agentId, 'a-1');
  assert.equal(info?.name, 'vm-1');
  assert.deepEqual(info?.labels, { tier: 'gold' });
  assert.equal(info?.lastStatus, null);
});

test('status reports from the agent are recorded for /v1/clusters', async (t) => {
  const gw = await startGateway(t);
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  agent.control.send({
    type: 'status',
    at: '2026-01-01T00:00:00.000Z',
    uptimeSeconds: 5,
    streamsActive: 0,
    bytesIn: 1,
    bytesOut: 2,
    apiServer: { reachable: true, version: 'v1.31.0' },
  });
  await waitFor(() => gw.gateway.clusters()[0]?.lastStatus !== null, 5_000, 'status recorded');
  const info = gw.gateway.clusters()[0];
  assert.equal((info?.lastStatus as { uptimeSeconds: number } | undefined)?.uptimeSeconds, 5);
  assert.equal(typeof info?.lastStatusAt, 'string');
});

test('openStream reaches the agent with the preamble and a ping stream echoes 1 MiB intact', async (t) => {
  const gw = await startGateway(t);
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  const stream = await gw.gateway.openStream('c1', { kind: 'ping', requestId: 'req-42', runnerId: 'r1' });
  const data = randomBytes(1024 * 1024);
  const back = await pingEcho(stream, data);
  assert.ok(back.equals(data), 'echo matches');
  assert.deepEqual(agent.preambles, [{ v: 1, kind: 'ping', requestId: 'req-42', runnerId: 'r1', cluster: 'c1' }]);
  await waitFor(() => gw.gateway.clusters()[0]?.streamsActive === 0, 5_000, 'stream accounted as closed');
});

test('openStream to a cluster with no agent rejects with a 503 TunnelError', async (t) => {
  const gw = await startGateway(t);
  await assert.rejects(
    gw.gateway.openStream('c2', { kind: 'ping', requestId: 'x' }),
    (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_CLUSTER_NOT_CONNECTED' && err.status === 503,
  );
});

test('a second session for the same cluster replaces the first, which gets GoAway and is closed', async (t) => {
  const gw = await startGateway(t);
  const first = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  const second = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  await first.closed;
  assert.deepEqual(first.goAways, [0]);
  assert.ok(first.messages.some((m) => m.type === 'error' && m.code === 'PT_ERR_SESSION_REPLACED'));
  assert.equal(gw.gateway.clusters().length, 1);
  const stream = await gw.gateway.openStream('c1', { kind: 'ping', requestId: 'after-replace' });
  assert.equal((await pingEcho(stream, Buffer.from('hi'))).toString(), 'hi');
  assert.equal(second.preambles.length, 1);
  assert.ok(gw.log.records().some((r) => r.event === 'agent_replaced' && r.code === 'PT_ERR_SESSION_REPLACED'));
});

test('an agent that never says hello is closed after the handshake timeout', async (t) => {
  const gw = await startGateway(t, { handshakeTimeoutMs: 200 });
  const silent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, handshake: false });
  await silent.closed;
  assert.equal(gw.gateway.clusters().length, 0);
  assert.ok(gw.log.records().some((r) => r.event === 'handshake_timeout'));
});

test("misbehaving agents (garbage bytes, bad control line, no hello) do not disturb another agent's session", async (t) => {
  const gw = await startGateway(t, { handshakeTimeoutMs: 300 });
  const good = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });

  // Garbage bytes instead of yamux frames.
  const garbage = await dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2 });
  t.after(() => {
    garbage.terminate();
  });
  const garbageClosed = once(garbage, 'close');
  garbage.send(Buffer.from('this is not yamux at all, not even close.....'));
  // A text frame on the binary tunnel.
  const texter = await dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2 });
  t.after(() => {
    texter.terminate();
  });
  const texterClosed = once(texter, 'close');
  texter.send('text!');
  // A protocol violation on the control channel.
  const rude = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2, handshake: false });
  rude.control.stream.write('{"type":"hello","agentId":42}\n');
  // And one that never says hello.
  const silent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2, handshake: false });

  await Promise.all([garbageClosed, texterClosed, rude.closed, silent.closed]);
  assert.deepEqual(
    gw.gateway.clusters().map((c) => c.cluster),
    ['c1'],
  );
  const stream = await gw.gateway.openStream('c1', { kind: 'ping', requestId: 'still-fine' });
  assert.equal((await pingEcho(stream, Buffer.from('still here'))).toString(), 'still here');
  assert.equal(good.goAways.length, 0);
  const failures = (await gw.registry.getSingleMetric('pipeops_tunnel_connect_failures_total')?.get())?.values ?? [];
  assert.equal(
    failures.reduce((n, v) => n + v.value, 0),
    4,
    'each misbehaving agent counted once',
  );
});

test('an agent speaking a protocol the gateway does not is told why, naming both versions and the side to upgrade, and disconnected', async (t) => {
  const gw = await startGateway(t);
  for (const [protocolVersion, upgrade] of [
    [99, 'upgrade the gateway (gateways first, then agents)'],
    [0, 'upgrade the agent'],
  ] as const) {
    const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, handshake: false });
    agent.control.send({ type: 'hello', agentId: 'a', name: 'n', clusterName: 'c1', version: '9.0.0', labels: {}, protocolVersion });
    await agent.closed;
    const error = agent.messages.find((m) => m.type === 'error');
    assert.equal(error?.type === 'error' ? error.code : undefined, 'PT_ERR_PROTOCOL_VERSION');
    assert.equal(
      error?.type === 'error' ? error.message : undefined,
      `agent 9.0.0 speaks protocol ${protocolVersion}, gateway ${defaultGatewayOptions.gatewayVersion} speaks ${PROTOCOL_VERSION}: ${upgrade}`,
    );
  }
  assert.equal(gw.gateway.clusters().length, 0);
});

test("an agent of an older release speaking the oldest protocol the gateway accepts is welcomed, and the welcome names the gateway's protocol", async (t) => {
  const gw = await startGateway(t);
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, handshake: false });
  agent.control.send({ type: 'hello', agentId: 'old', name: 'n', clusterName: 'c1', version: '0.0.9', labels: {}, protocolVersion: MIN_PROTOCOL_VERSION });
  await waitFor(() => agent.messages.some((m) => m.type === 'welcome'), 5_000, 'the welcome');
  const welcome = agent.messages.find((m) => m.type === 'welcome');
  assert.equal(welcome?.type === 'welcome' ? welcome.protocolVersion : undefined, PROTOCOL_VERSION);
  assert.deepEqual(
    gw.gateway.clusters().map((c) => [c.cluster, c.version]),
    [['c1', '0.0.9']],
  );
});

test('a stream the agent opens after the control stream is reset and the session stays up', async (t) => {
  const gw = await startGateway(t);
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  const extra = agent.session.open();
  const failed = new Promise<Error & { code?: string }>((resolve) => extra.once('error', resolve));
  extra.write('hello?');
  extra.resume();
  assert.equal((await failed).code, 'PT_ERR_MUX_STREAM_RESET');
  const stream = await gw.gateway.openStream('c1', { kind: 'ping', requestId: 'still-up' });
  assert.equal((await pingEcho(stream, Buffer.from('ok'))).toString(), 'ok');
});
