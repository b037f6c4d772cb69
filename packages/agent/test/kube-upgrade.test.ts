import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { FAKE_SPDY_BYE, waitFor } from '@pipeops/tunnel-testkit';
import { metricValue, startHarnessOnFake } from './helpers/kube-harness.ts';

const setup = startHarnessOnFake;

/** Reads from `s` until `pred(text so far)` holds. */
async function readUntil(s: Duplex, acc: { text: string }, pred: (text: string) => boolean): Promise<void> {
  while (!pred(acc.text)) {
    const [chunk] = (await once(s, 'data')) as [Buffer];
    acc.text += chunk.toString('latin1');
  }
}

const EXEC = '/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdin=true&stdout=true';

test('a WebSocket exec upgrade is relayed with its subprotocol and echoes both ways, with the agent token', async (t) => {
  const { fake, h } = await setup(t);
  const stream = h.open();
  const ws = new WebSocket(`ws://gateway.example${EXEC}`, ['v5.channel.k8s.io', 'v4.channel.k8s.io'], {
    createConnection: () => stream as never,
    headers: { authorization: 'Bearer runner-secret' },
  });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  assert.equal(ws.protocol, 'v5.channel.k8s.io');
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_k8s_upgrades_active'), 1);
  const echoed = once(ws, 'message');
  ws.send(Buffer.from('\x00hello'));
  const [data] = (await echoed) as [Buffer];
  assert.equal(data.toString(), '\x00hello');
  const seen = fake.requests.find((r) => r.upgrade);
  assert.equal(seen?.headers.authorization, `Bearer ${fake.token}`);
  assert.equal(seen.headers['sec-websocket-protocol'], 'v5.channel.k8s.io,v4.channel.k8s.io');
  const closed = once(ws, 'close');
  ws.send(Buffer.from('\x00close'));
  const [code] = (await closed) as [number];
  assert.equal(code, 1000);
  await waitFor(async () => (await metricValue(h.registry, 'pipeops_tunnel_k8s_upgrades_active')) === 0);
  await waitFor(() =>
    h.logs.find((r) => r.msg === 'kube request' && r.upgraded === true && r.status === 101 && r.subresource === 'exec' && r.resource === 'pods'),
  );
});

test('a SPDY/3.1 upgrade carries raw bytes both ways and relays each half-close', async (t) => {
  const { fake, h } = await setup(t);
  const stream = h.open();
  stream.write(
    `POST ${EXEC} HTTP/1.1\r\nHost: gateway.example\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n` +
      'X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: channel.k8s.io\r\nContent-Length: 0\r\n\r\n',
  );
  const acc = { text: '' };
  await readUntil(stream, acc, (s) => s.includes('\r\n\r\n'));
  assert.match(acc.text, /^HTTP\/1\.1 101 /);
  assert.match(acc.text, /\r\nX-Stream-Protocol-Version: v4\.channel\.k8s\.io\r\n/i);
  assert.match(acc.text, /\r\nUpgrade: SPDY\/3\.1\r\n/i);
  acc.text = acc.text.slice(acc.text.indexOf('\r\n\r\n') + 4);
  stream.write('ping-1');
  await readUntil(stream, acc, (s) => s.includes('ping-1'));
  // Our FIN: the API server still answers after it (half-close), then ends its side.
  const ended = once(stream, 'end');
  stream.on('data', (c: Buffer) => {
    acc.text += c.toString('latin1');
  });
  stream.end('ping-2');
  await ended;
  assert.equal(acc.text, `ping-1ping-2${FAKE_SPDY_BYE}`);
  assert.equal(fake.requests.find((r) => r.upgrade)?.method, 'POST');
  await waitFor(async () => (await metricValue(h.registry, 'pipeops_tunnel_k8s_upgrades_active')) === 0);
});

test('an upgrade the API server refuses is relayed as a plain response', async (t) => {
  const { h } = await setup(t);
  const text = await h.raw(
    'GET /api/v1/namespaces/default/pods/web-0/nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  assert.match(text, /^HTTP\/1\.1 404 /);
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { kind: string; code: number };
  assert.deepEqual([body.kind, body.code], ['Status', 404]);
});

test('a runner that resets an upgraded stream closes the upstream connection', async (t) => {
  const { fake, h } = await setup(t);
  const stream = h.open();
  stream.write(`POST ${EXEC} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n`);
  await once(stream, 'data');
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_k8s_upgrades_active'), 1);
  stream.destroy();
  await waitFor(async () => (await metricValue(h.registry, 'pipeops_tunnel_k8s_upgrades_active')) === 0, { timeoutMs: 1_000 });
  assert.ok(fake.requests.some((r) => r.upgrade));
});
