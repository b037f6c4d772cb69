import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { request } from 'undici';
import WebSocket from 'ws';
import { kubeconfigFor, kubectl } from '@pipeops/tunnel-testkit';
import { connect } from '../src/index.ts';
import { startFakeGatewayRunner } from './helpers/fake-gateway-runner.ts';
import { createTestApp, until } from './helpers/test-app.ts';

const TOKEN = 'runner-tkn-l1st3n';

test('listen() serves plain requests, WebSocket and raw upgrades through the tunnel on a local port', async (t) => {
  const app = createTestApp();
  const gw = await startFakeGatewayRunner(t, app.server, { token: TOKEN });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', ca: gw.caCert });
  t.after(() => tunnel.close());
  const proxy = await tunnel.listen({ port: 0 });
  assert.match(proxy.url, /^http:\/\/127\.0\.0\.1:\d+$/);

  const res = await request(`${proxy.url}/version`);
  assert.equal(res.statusCode, 200);
  assert.equal(((await res.body.json()) as { gitVersion: string }).gitVersion, 'v1.99.0-fake');

  const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/api/v1/namespaces/default/pods/p0/attach`, ['v5.channel.k8s.io']);
  t.after(() => ws.terminate());
  await once(ws, 'open');
  assert.equal(ws.protocol, 'v5.channel.k8s.io');
  ws.send('ping');
  const [msg] = await once(ws, 'message');
  assert.equal(String(msg), 'echo:ping');
  ws.close();

  const raw = netConnect(proxy.port, '127.0.0.1');
  t.after(() => raw.destroy());
  let got = '';
  raw.setEncoding('utf8').on('data', (d: string) => {
    got += d;
  });
  raw.write('POST /api/v1/namespaces/default/pods/p0/portforward HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\nabc');
  await until(() => got.includes('ABC'), 'the raw echo');
  assert.match(got, /^HTTP\/1\.1 101 /);
  raw.end();
  await once(raw, 'end');
  assert.ok(got.endsWith('BYE'), got);
});

test('kubectl get --raw /version works through listen()', async (t) => {
  const app = createTestApp();
  const gw = await startFakeGatewayRunner(t, app.server, { token: TOKEN });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', ca: gw.caCert });
  t.after(() => tunnel.close());
  const proxy = await tunnel.listen();
  const r = await kubectl(['get', '--raw', '/version'], { kubeconfig: kubeconfigFor({ server: proxy.url }) });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { gitVersion: string }).gitVersion, 'v1.99.0-fake');
});

test('while the tunnel is down the local proxy answers 503 with a Kubernetes Status body', async (t) => {
  const app = createTestApp();
  const gw = await startFakeGatewayRunner(t, app.server, { token: TOKEN });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', ca: gw.caCert, reconnect: { intervalMs: 1_000, maxIntervalMs: 1_000 } });
  t.after(() => tunnel.close());
  const proxy = await tunnel.listen();
  const lost = once(tunnel, 'disconnected');
  await gw.stop();
  await lost;
  const res = await request(`${proxy.url}/version`);
  assert.equal(res.statusCode, 503);
  const body = (await res.body.json()) as { kind: string; status: string; code: number };
  assert.deepEqual([body.kind, body.status, body.code], ['Status', 'Failure', 503]);
  await proxy.close();
  await assert.rejects(request(`${proxy.url}/version`), { code: 'ECONNREFUSED' });
});

test('a malformed request head gets a 400 from the local proxy, not a bare close, and the proxy keeps serving', async (t) => {
  const app = createTestApp();
  const gw = await startFakeGatewayRunner(t, app.server, { token: TOKEN });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', ca: gw.caCert });
  t.after(() => tunnel.close());
  const proxy = await tunnel.listen({ port: 0 });

  const raw = netConnect(proxy.port, '127.0.0.1');
  t.after(() => raw.destroy());
  let got = '';
  raw.setEncoding('utf8').on('data', (d: string) => {
    got += d;
  });
  raw.write('GET /version HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n');
  await once(raw, 'close');
  assert.match(got, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(got, /\r\nConnection: close\r\n/i);

  assert.equal((await request(`${proxy.url}/version`)).statusCode, 200);
});
