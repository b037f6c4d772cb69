import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { FAKE_SPDY_BYE, startFakeApiServer, waitFor, type FakeApiServer } from '../src/index.ts';

async function start(t: TestContext): Promise<FakeApiServer> {
  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  return fake;
}

test('a WebSocket exec picks the first offered channel protocol, echoes on the same channel, and closes 1000 on "close"', async (t) => {
  const fake = await start(t);
  const ws = new WebSocket(`wss://127.0.0.1:${fake.port}/api/v1/namespaces/default/pods/web-0/exec?command=sh`, ['v4.channel.k8s.io', 'v5.channel.k8s.io'], {
    ca: fake.caCert,
    headers: { authorization: `Bearer ${fake.token}` },
  });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  assert.equal(ws.protocol, 'v4.channel.k8s.io');
  ws.send(Buffer.from('\x00hello'));
  const [echo] = (await once(ws, 'message')) as [Buffer];
  assert.deepEqual(echo, Buffer.from('\x00hello'));
  ws.send(Buffer.from('\x02close'));
  const [code] = (await once(ws, 'close')) as [number];
  assert.equal(code, 1000);
});

test('a WebSocket upgrade with the wrong token is refused with 401 before any upgrade', async (t) => {
  const fake = await start(t);
  const ws = new WebSocket(`wss://127.0.0.1:${fake.port}/api/v1/namespaces/default/pods/web-0/portforward?ports=80`, ['portforward.k8s.io'], {
    ca: fake.caCert,
    headers: { authorization: 'Bearer nope' },
  });
  const [req, res] = (await once(ws, 'unexpected-response')) as [{ destroy(): void }, { statusCode: number }];
  assert.equal(res.statusCode, 401);
  req.destroy();
  assert.equal(fake.requests.at(-1)?.upgrade, true);
  assert.equal(fake.requests.at(-1)?.authorized, false);
});

test('a SPDY/3.1 upgrade answers 101 with the offered stream protocol, echoes bytes, and says bye after the client half-closes', async (t) => {
  const fake = await start(t);
  const socket = tlsConnect({ host: '127.0.0.1', port: fake.port, ca: fake.caCert });
  t.after(() => socket.destroy());
  await once(socket, 'secureConnect');
  socket.write(
    'POST /api/v1/namespaces/default/pods/web-0/exec?command=sh HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
      `Authorization: Bearer ${fake.token}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n` +
      'X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: channel.k8s.io\r\nContent-Length: 0\r\n\r\n',
  );
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    received += d;
  });
  const ended = once(socket, 'end');
  await waitFor(() => received.includes('\r\n\r\n'), { what: 'the 101 head' });
  assert.match(received, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(received, /\r\nUpgrade: SPDY\/3\.1\r\n/);
  assert.match(received, /\r\nX-Stream-Protocol-Version: v4\.channel\.k8s\.io\r\n/);
  socket.write('ping-1');
  await waitFor(() => received.endsWith('ping-1'), { what: 'the echo' });
  socket.end('ping-2'); // half-close: our FIN, the fake's side stays open
  await ended;
  assert.ok(received.endsWith(`ping-1ping-2${FAKE_SPDY_BYE}`), JSON.stringify(received));
});
