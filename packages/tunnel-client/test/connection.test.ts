import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { fetch } from 'undici';
import { connect, resolveConnectOptions } from '../src/index.ts';
import { startFakeGatewayRunner } from './helpers/fake-gateway-runner.ts';
import { createTestApp, until } from './helpers/test-app.ts';

const TOKEN = 'runner-tkn-77e6d5c4';

test('the runner WebSocket carries runner_id, cluster, the bearer token and the pipeops-tunnel.v1 subprotocol', async (t) => {
  const gw = await startFakeGatewayRunner(t, createTestApp().server, { token: TOKEN });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', runnerId: 'r-7', ca: gw.caCert });
  t.after(() => tunnel.close());
  assert.equal(tunnel.state, 'connected');
  assert.deepEqual(gw.upgrades, [{ runnerId: 'r-7', cluster: 'c1', authorization: `Bearer ${TOKEN}`, protocol: 'pipeops-tunnel.v1' }]);
});

test('a refused token rejects connect() with PT_ERR_AUTH_REJECTED after one attempt, without a retry loop', async (t) => {
  const gw = await startFakeGatewayRunner(t, createTestApp().server, { token: TOKEN });
  await assert.rejects(connect({ gatewayUrl: gw.url, token: 'wrong', cluster: 'c1', ca: gw.caCert }), { code: 'PT_ERR_AUTH_REJECTED', status: 401 });
  const forbidden = await startFakeGatewayRunner(t, createTestApp().server, { token: TOKEN, cluster: 'c1' });
  await assert.rejects(connect({ gatewayUrl: forbidden.url, token: TOKEN, cluster: 'c2', ca: forbidden.caCert }), {
    code: 'PT_ERR_AUTH_REJECTED',
    status: 403,
  });
  assert.equal(gw.upgrades.length, 0);
  assert.equal(gw.attempts(), 1, 'one dial, no retry loop');
  assert.equal(forbidden.attempts(), 1);
});

test('a gateway certificate from an untrusted CA fails the dial; insecureSkipVerify accepts it', async (t) => {
  const gw = await startFakeGatewayRunner(t, createTestApp().server, { token: TOKEN });
  await assert.rejects(connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', connectTimeoutMs: 0 }), { code: 'PT_ERR_CLIENT_DIAL_FAILED' });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', insecureSkipVerify: true });
  t.after(() => tunnel.close());
  assert.equal(tunnel.state, 'connected');
});

test('while the gateway is down a request fails fast with PT_ERR_CLIENT_DISCONNECTED, and works again once it is back', async (t) => {
  const app = createTestApp();
  const gw = await startFakeGatewayRunner(t, app.server, { token: TOKEN });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', ca: gw.caCert, reconnect: { intervalMs: 20, maxIntervalMs: 100 } });
  t.after(() => tunnel.close());
  const lost = once(tunnel, 'disconnected');
  await gw.stop();
  await lost;
  const started = Date.now();
  await assert.rejects(tunnel.request({ method: 'GET', path: '/version' }), { code: 'PT_ERR_CLIENT_DISCONNECTED' });
  await assert.rejects(
    fetch(`${tunnel.baseUrl}/version`, { dispatcher: tunnel.dispatcher }),
    (err: Error) => (err.cause as { code?: string }).code === 'PT_ERR_CLIENT_DISCONNECTED',
  );
  assert.ok(Date.now() - started < 1_000, 'failed fast');
  await gw.restart();
  await until(() => tunnel.state === 'connected', 'the tunnel to reconnect');
  assert.equal(tunnel.reconnects, 1);
  const r = await tunnel.request({ method: 'GET', path: '/version' });
  assert.equal(r.status, 200);
});

test('with waitForConnectionMs a request made while disconnected waits for the reconnect', async (t) => {
  const app = createTestApp();
  const gw = await startFakeGatewayRunner(t, app.server, { token: TOKEN });
  const tunnel = await connect({
    gatewayUrl: gw.url,
    token: TOKEN,
    cluster: 'c1',
    ca: gw.caCert,
    waitForConnectionMs: 10_000,
    reconnect: { intervalMs: 20, maxIntervalMs: 100 },
  });
  t.after(() => tunnel.close());
  const lost = once(tunnel, 'disconnected');
  await gw.stop();
  await lost;
  const pending = tunnel.request({ method: 'GET', path: '/version' });
  await gw.restart();
  const r = await pending;
  assert.equal(r.status, 200);
});

test('waitForConnectionMs elapsing rejects with PT_ERR_CLIENT_DISCONNECTED', async (t) => {
  const gw = await startFakeGatewayRunner(t, createTestApp().server, { token: TOKEN });
  const tunnel = await connect({
    gatewayUrl: gw.url,
    token: TOKEN,
    cluster: 'c1',
    ca: gw.caCert,
    waitForConnectionMs: 150,
    reconnect: { intervalMs: 20, maxIntervalMs: 50 },
  });
  t.after(() => tunnel.close());
  const lost = once(tunnel, 'disconnected');
  await gw.stop();
  await lost;
  const started = Date.now();
  await assert.rejects(tunnel.openStream(), { code: 'PT_ERR_CLIENT_DISCONNECTED' });
  assert.ok(Date.now() - started >= 140, 'waited');
});

test('after close() requests fail with PT_ERR_CLIENT_CLOSED and the session is gone', async (t) => {
  const gw = await startFakeGatewayRunner(t, createTestApp().server, { token: TOKEN });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', ca: gw.caCert });
  await tunnel.close();
  await tunnel.close();
  assert.equal(tunnel.state, 'closed');
  await assert.rejects(tunnel.openStream(), { code: 'PT_ERR_CLIENT_CLOSED' });
  await until(() => gw.sessions.size === 0, 'the gateway to see the session end');
});

test('no gateway listening: connect() retries with backoff and rejects with PT_ERR_CLIENT_DIAL_FAILED at connectTimeoutMs', async (t) => {
  const gw = await startFakeGatewayRunner(t, createTestApp().server, { token: TOKEN });
  await gw.stop();
  const started = Date.now();
  await assert.rejects(
    connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', ca: gw.caCert, connectTimeoutMs: 300, reconnect: { intervalMs: 20, maxIntervalMs: 50 } }),
    { code: 'PT_ERR_CLIENT_DIAL_FAILED' },
  );
  assert.ok(Date.now() - started >= 290);
});

test('invalid options are refused with PT_ERR_CLIENT_CONFIG naming the field', () => {
  assert.throws(() => resolveConnectOptions({ gatewayUrl: 'ftp://x', token: 't', cluster: 'c' }), { code: 'PT_ERR_CLIENT_CONFIG', message: /gatewayUrl/ });
  assert.throws(() => resolveConnectOptions({ gatewayUrl: 'https://x', token: '', cluster: 'c' }), { message: /token/ });
  assert.throws(() => resolveConnectOptions({ gatewayUrl: 'https://x', token: 't', cluster: '' }), { message: /cluster/ });
  assert.throws(() => resolveConnectOptions({ gatewayUrl: 'https://x', token: 't', cluster: 'c', reconnect: { intervalMs: -1 } }), {
    message: /reconnect.intervalMs/,
  });
  assert.throws(() => resolveConnectOptions({ gatewayUrl: 'https://x', token: 't', cluster: 'c', baseUrl: 'http://x/path' }), { message: /baseUrl/ });
  const o = resolveConnectOptions({ gatewayUrl: 'https://gw.example:8443', token: 't', cluster: 'c' });
  assert.equal(o.baseUrl.origin, 'http://kubernetes.tunnel.invalid');
  assert.equal(o.waitForConnectionMs, 0);
});
