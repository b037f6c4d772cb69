// exec/attach/port-forward upgrades through gateway and agent: WebSocket
// (*.channel.k8s.io, portforward.k8s.io) and SPDY/3.1, echoed by the fake
// API server, with half-close carried through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { activeStreams, FAKE_SPDY_BYE, waitFor } from '@pipeops/tunnel-testkit';
import { RUNNER_TOKEN, startK8sPath } from './k8s-harness.ts';

test('a WebSocket exec negotiates v5.channel.k8s.io, echoes each channel message, and closes 1000 end to end', async (t) => {
  const p = await startK8sPath(t);
  const ws = new WebSocket(
    `wss://127.0.0.1:${p.gatewayPort}/k8s/clusters/c1/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdin=true&stdout=true`,
    ['v5.channel.k8s.io', 'v4.channel.k8s.io'],
    { ca: p.gatewayCa, headers: { authorization: `Bearer ${RUNNER_TOKEN}` }, perMessageDeflate: false },
  );
  t.after(() => ws.terminate());
  await once(ws, 'open');
  assert.equal(ws.protocol, 'v5.channel.k8s.io');
  for (const [channel, text] of [
    [0, 'echo hello\n'],
    [1, 'x'.repeat(100_000)],
    [2, 'stderr?'],
  ] as const) {
    const msg = Buffer.concat([Buffer.from([channel]), Buffer.from(text)]);
    ws.send(msg);
    const [echo] = (await once(ws, 'message')) as [Buffer];
    assert.deepEqual(echo, msg);
  }
  ws.send(Buffer.from('\x00close'));
  const [code] = (await once(ws, 'close')) as [number];
  assert.equal(code, 1000);
  const upgrade = p.fake.requests.find((r) => r.upgrade);
  assert.equal(upgrade?.authorized, true, "the upgrade reached the API server with the agent's credentials");
});

test('a port-forward WebSocket negotiates portforward.k8s.io', async (t) => {
  const p = await startK8sPath(t);
  const ws = new WebSocket(
    `wss://127.0.0.1:${p.gatewayPort}/k8s/clusters/c1/api/v1/namespaces/default/pods/web-1/portforward?ports=8080`,
    ['portforward.k8s.io'],
    { ca: p.gatewayCa, headers: { authorization: `Bearer ${RUNNER_TOKEN}` } },
  );
  t.after(() => ws.terminate());
  await once(ws, 'open');
  assert.equal(ws.protocol, 'portforward.k8s.io');
  ws.send(Buffer.from('\x00GET / HTTP/1.0\r\n\r\n'));
  const [echo] = (await once(ws, 'message')) as [Buffer];
  assert.equal(echo.toString(), '\x00GET / HTTP/1.0\r\n\r\n');
});

test("a SPDY/3.1 exec gets 101 with the chosen stream protocol, echoes raw bytes, and the runner's half-close reaches the API server", async (t) => {
  const p = await startK8sPath(t);
  const socket = tlsConnect({ host: '127.0.0.1', port: p.gatewayPort, ca: p.gatewayCa });
  t.after(() => socket.destroy());
  await once(socket, 'secureConnect');
  socket.write(
    'POST /k8s/clusters/c1/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdin=true HTTP/1.1\r\n' +
      `Host: 127.0.0.1:${p.gatewayPort}\r\nAuthorization: Bearer ${RUNNER_TOKEN}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n` +
      'X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io\r\nContent-Length: 0\r\n\r\n',
  );
  let received = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
  });
  const ended = once(socket, 'end');
  await waitFor(() => received.includes('\r\n\r\n'), { what: 'the 101 head' });
  const headEnd = received.indexOf('\r\n\r\n') + 4;
  const head = received.subarray(0, headEnd).toString('latin1');
  assert.match(head, /^HTTP\/1\.1 101 /);
  assert.match(head, /\r\nupgrade: SPDY\/3\.1\r\n/i);
  assert.match(head, /\r\nx-stream-protocol-version: v4\.channel\.k8s\.io\r\n/i);
  const payload = Buffer.alloc(512 * 1024, 7);
  socket.write(payload);
  await waitFor(() => received.length - headEnd >= payload.length, { what: 'the echo of 512 KiB' });
  socket.end(Buffer.from('last words')); // FIN from the runner: the fake answers bye and ends
  await ended;
  const body = received.subarray(headEnd);
  assert.equal(body.length, payload.length + 'last words'.length + FAKE_SPDY_BYE.length);
  assert.ok(body.subarray(0, payload.length).equals(payload));
  assert.equal(body.subarray(payload.length).toString(), `last words${FAKE_SPDY_BYE}`);
});

test('an upgrade the API server answers without switching (404) is relayed as a plain response, and the stream closes on both sides at once', async (t) => {
  const p = await startK8sPath(t);
  const socket = tlsConnect({ host: '127.0.0.1', port: p.gatewayPort, ca: p.gatewayCa });
  t.after(() => socket.destroy());
  await once(socket, 'secureConnect');
  let received = '';
  socket.setEncoding('latin1').on('data', (d: string) => {
    received += d;
  });
  const closed = once(socket, 'close');
  // kubectl exec of a pod that does not exist: the API server answers the upgrade with a 404 Status.
  socket.write(
    'POST /k8s/clusters/c1/api/v1/namespaces/default/nothing-here HTTP/1.1\r\n' +
      `Host: 127.0.0.1:${p.gatewayPort}\r\nAuthorization: Bearer ${RUNNER_TOKEN}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n`,
  );
  await closed;
  assert.match(received, /^HTTP\/1\.1 404 /);
  // Before the fix the agent never read the runner's FIN after a non-101 answer: its stream stayed open until the 30 s linger.
  await waitFor(async () => (await activeStreams(p.agentRegistry)) === 0 && (await activeStreams(p.gatewayRegistry)) === 0, {
    what: 'no stream left open on the agent or the gateway',
  });
});
