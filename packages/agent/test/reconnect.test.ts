import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { TunnelError } from '@pipeops/tunnel-protocol';
import { startFakeGateway } from './helpers/fake-gateway.ts';
import { nextConnected, startAgent, waitFor } from './helpers/agent.ts';
import { startTcpRelay } from './helpers/tcp-relay.ts';

const token = 'agent-secret-token-0123456789';

test('a refused token ends the agent with PT_ERR_AUTH_REJECTED after exactly one dial', async (t) => {
  const gw = await startFakeGateway({ token: 'the-right-token' });
  t.after(() => gw.close());
  const { agent, registry } = await startAgent(t, { apiUrl: gw.url, token, allowInsecureTransport: true });
  await assert.rejects(agent.done, (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_AUTH_REJECTED' && e.status === 401);
  assert.equal(gw.upgrades.length, 1);
  assert.equal(agent.state, 'closed');
  assert.match(await registry.metrics(), /pipeops_tunnel_connect_failures_total\{reason="auth"\} 1/);
});

test('maxAttempts consecutive failed dials end the agent with PT_ERR_RECONNECT_EXHAUSTED', async (t) => {
  const gw = await startFakeGateway({ token });
  const port = gw.port;
  await gw.close(); // nothing listens there now: every dial is refused
  const { agent, registry } = await startAgent(t, {
    apiUrl: `http://127.0.0.1:${port}`,
    token,
    allowInsecureTransport: true,
    reconnect: { enabled: true, maxAttempts: 3, intervalMs: 10, maxIntervalMs: 20 },
  });
  await assert.rejects(agent.done, (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_RECONNECT_EXHAUSTED');
  assert.match(await registry.metrics(), /pipeops_tunnel_connect_failures_total\{reason="network"\} 3/);
});

test('with reconnect disabled the first session loss ends the agent with PT_ERR_RECONNECT_EXHAUSTED', async (t) => {
  const gw = await startFakeGateway({ token });
  t.after(() => gw.close());
  const { agent } = await startAgent(t, {
    apiUrl: gw.url,
    token,
    allowInsecureTransport: true,
    reconnect: { enabled: false, maxAttempts: 0, intervalMs: 10, maxIntervalMs: 20 },
  });
  await nextConnected(agent);
  gw.sessions[0]?.destroy();
  await assert.rejects(agent.done, (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_RECONNECT_EXHAUSTED');
});

test('a gateway restarted on the same port after an outage is reconnected to within 2 s of listening', async (t) => {
  let gw = await startFakeGateway({ token });
  const port = gw.port;
  t.after(() => gw.close());
  // A long backoff (5 s base, like the original agent's default): the port
  // probe, not the timer, must bring the agent back.
  const { agent, registry, logs } = await startAgent(t, {
    apiUrl: gw.url,
    token,
    allowInsecureTransport: true,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 5_000, maxIntervalMs: 30_000 },
  });
  await nextConnected(agent);
  const disconnected = once(agent, 'disconnected');
  await gw.close();
  await disconnected;
  // The outage lasts until the agent has had a dial refused and sits in backoff.
  await waitFor(() => logs.records().some((r) => r.msg === 'tunnel dial failed') && agent.state === 'backoff', 5_000, 'a refused dial');
  const reconnected = nextConnected(agent);
  gw = await startFakeGateway({ token, port });
  const listeningAt = performance.now();
  await reconnected;
  const ms = performance.now() - listeningAt;
  assert.ok(ms < 2_000, `reconnected ${Math.round(ms)} ms after the gateway listened`);
  assert.match(await registry.metrics(), /pipeops_tunnel_reconnects_total 1/);
});

test('a gateway that stops answering is detected by keepalive and the agent goes to backoff', async (t) => {
  const gw = await startFakeGateway({ token });
  t.after(() => gw.close());
  const relay = await startTcpRelay(gw.port);
  t.after(() => relay.close());
  const { agent } = await startAgent(t, {
    apiUrl: `http://127.0.0.1:${relay.port}`,
    token,
    allowInsecureTransport: true,
    timeoutMs: 1_000,
    mux: { keepAliveIntervalMs: 200, keepAliveTimeoutMs: 500 },
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 5_000, maxIntervalMs: 30_000 },
  });
  await nextConnected(agent);
  const lostAt = performance.now();
  relay.blackhole();
  const [info] = (await once(agent, 'disconnected')) as [{ reason: string }];
  const ms = performance.now() - lostAt;
  assert.equal(info.reason, 'PT_ERR_MUX_KEEPALIVE_TIMEOUT');
  assert.ok(ms < 2_000, `noticed after ${Math.round(ms)} ms`);
  // The re-dial through the dead relay times out; the agent then waits in backoff.
  await waitFor(() => agent.state === 'backoff' && relay.connections >= 2, 5_000, 'backoff after the dead re-dial');
});

test('a gateway reconnect request makes the agent dial again at once', async (t) => {
  const gw = await startFakeGateway({ token });
  t.after(() => gw.close());
  const { agent } = await startAgent(t, {
    apiUrl: gw.url,
    token,
    allowInsecureTransport: true,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 30_000, maxIntervalMs: 60_000 },
  });
  await nextConnected(agent);
  const again = nextConnected(agent);
  const askedAt = performance.now();
  gw.askReconnect();
  await again;
  assert.ok(performance.now() - askedAt < 1_000);
  assert.equal(gw.upgrades.length, 2);
});

test('closing the agent while it waits in backoff resolves done promptly', async (t) => {
  const gw = await startFakeGateway({ token });
  const port = gw.port;
  await gw.close();
  const { agent, logs } = await startAgent(t, {
    apiUrl: `http://127.0.0.1:${port}`,
    token,
    allowInsecureTransport: true,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 30_000, maxIntervalMs: 60_000, probeIntervalMs: 0 },
  });
  await waitFor(() => logs.records().some((r) => r.msg === 'tunnel dial failed') && agent.state === 'backoff', 5_000, 'backoff');
  const started = performance.now();
  await agent.close();
  await agent.done;
  assert.equal(agent.state, 'closed');
  assert.ok(performance.now() - started < 1_000);
});
