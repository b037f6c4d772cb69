import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createAgent } from '../src/agent.ts';
import { loadCaTrust } from '../src/dial.ts';
import { Registry } from 'prom-client';
import { TunnelError } from '@pipeops/tunnel-protocol';
import { startFakeGateway } from './helpers/fake-gateway.ts';
import { testCerts } from './helpers/certs.ts';
import { captureLogs } from './helpers/log-capture.ts';
import { testOptions } from './helpers/options.ts';
import { startConnectProxy } from './helpers/connect-proxy.ts';
import { nextConnected, startAgent, tempFile } from './helpers/agent.ts';

const token = 'agent-secret-token-0123456789';

test('without the gateway CA the dial fails with a TLS reason and is retried', async (t) => {
  const gw = await startFakeGateway({ token, tls: testCerts() });
  t.after(() => gw.close());
  const { agent, registry, logs } = await startAgent(t, {
    apiUrl: gw.url,
    token,
    reconnect: { enabled: true, maxAttempts: 2, intervalMs: 10, maxIntervalMs: 20 },
  });
  await assert.rejects(agent.done, (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_RECONNECT_EXHAUSTED');
  assert.match(await registry.metrics(), /pipeops_tunnel_connect_failures_total\{reason="tls"\} 2/);
  assert.ok(logs.records().some((r) => r.msg === 'tunnel dial failed' && r.reason === 'tls'));
});

test('insecureSkipVerify connects to a gateway with an unknown CA and warns at start and on connect', async (t) => {
  const gw = await startFakeGateway({ token, tls: testCerts() });
  t.after(() => gw.close());
  const { agent, logs } = await startAgent(t, { apiUrl: gw.url, token, tls: { insecureSkipVerify: true } });
  await nextConnected(agent);
  const warnings = logs.records().filter((r) => r.level === 40 && r.insecureSkipVerify === true);
  assert.deepEqual(
    warnings.map((w) => w.when),
    ['start', 'connect'],
  );
});

test('caFile trusts the gateway CA on top of the default roots', async (t) => {
  const certs = testCerts();
  const gw = await startFakeGateway({ token, tls: certs });
  t.after(() => gw.close());
  const { agent } = await startAgent(t, { apiUrl: gw.url, token, tls: { insecureSkipVerify: false, caFile: tempFile(t, 'ca.pem', certs.caCert) } });
  await nextConnected(agent);
  assert.equal(agent.state, 'connected');
});

test('the trust store of tls.caFile is built once per content of the file, and again when the file changes', (t) => {
  const file = tempFile(t, 'ca.pem', testCerts().caCert);
  const first = loadCaTrust(file);
  assert.equal(loadCaTrust(file, first), first, 'the same text: the same context, not ~11 ms of parsing per dial');
  writeFileSync(file, `${testCerts().caCert}\n`);
  const rotated = loadCaTrust(file, first);
  assert.notEqual(rotated.context, first.context);
  assert.equal(rotated.pem, `${testCerts().caCert}\n`);
  writeFileSync(file, 'not a certificate');
  assert.throws(
    () => loadCaTrust(file, rotated),
    (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_CONFIG' && e.message.includes('no PEM certificate'),
  );
});

test('an unreadable caFile is a configuration error naming tls.caFile', () => {
  assert.throws(
    () =>
      createAgent(testOptions({ tls: { insecureSkipVerify: false, caFile: '/nonexistent/ca.pem' } }), {
        logger: captureLogs().logger,
        registry: new Registry(),
      }),
    (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_CONFIG' && e.message.includes('tls.caFile'),
  );
});

test('wss goes through the HTTPS proxy with CONNECT, and NO_PROXY bypasses it', async (t) => {
  const certs = testCerts();
  const gw = await startFakeGateway({ token, tls: certs });
  t.after(() => gw.close());
  const proxy = await startConnectProxy();
  t.after(() => proxy.close());
  const caFile = tempFile(t, 'ca.pem', certs.caCert);
  const { agent, logs } = await startAgent(t, { apiUrl: gw.url, token, tls: { insecureSkipVerify: false, caFile }, proxy: { httpsProxy: proxy.url } });
  await nextConnected(agent);
  assert.deepEqual(proxy.tunnels, [`127.0.0.1:${gw.port}`]);
  assert.ok(logs.lines.every((l) => !l.includes(token)));

  const direct = await startAgent(t, {
    apiUrl: gw.url,
    token,
    tls: { insecureSkipVerify: false, caFile },
    proxy: { httpsProxy: proxy.url, noProxy: '127.0.0.1' },
  });
  await nextConnected(direct.agent);
  assert.equal(proxy.tunnels.length, 1, 'the NO_PROXY agent dialed directly');
});

test('a proxy that cannot reach the gateway is a network failure, not an auth failure', async (t) => {
  const proxy = await startConnectProxy();
  t.after(() => proxy.close());
  const gw = await startFakeGateway({ token, tls: testCerts() });
  const port = gw.port;
  await gw.close();
  const { agent, registry } = await startAgent(t, {
    apiUrl: `https://127.0.0.1:${port}`,
    token,
    proxy: { httpsProxy: proxy.url },
    reconnect: { enabled: true, maxAttempts: 2, intervalMs: 10, maxIntervalMs: 20 },
  });
  await assert.rejects(agent.done, (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_RECONNECT_EXHAUSTED');
  assert.match(await registry.metrics(), /pipeops_tunnel_connect_failures_total\{reason="network"\} 2/);
});
