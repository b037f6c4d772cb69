// client-node's PortForward through tunnel.kubeConfig(): a WebSocket upgrade
// on a tunnel stream, through the real gateway and agent, to the testkit's
// fake API server, whose /portforward route echoes every WebSocket message.
//
// What the fake does not do: the kubelet starts each port's data and error
// channels with a frame holding the port number (2 bytes, little-endian), and
// client-node's PortForward strips the first 2 bytes of each channel for it.
// The fake only echoes, so the test sends that preamble itself as its first
// bytes: the echo comes back on channel 0 exactly as the kubelet's would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { PortForward } from '@kubernetes/client-node';
import { waitFor } from '@pipeops/tunnel-testkit';
import type WebSocket from 'ws';
import { connect } from '../src/index.ts';
import { CLUSTER, RUNNER_TOKEN, startRealPath } from './helpers/real-path.ts';

const PORT = 8080;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('PortForward through kubeConfig() carries bytes both ways over a WebSocket on a tunnel stream', async (t) => {
  const path = await startRealPath(t);
  const tunnel = await connect({ gatewayUrl: path.gatewayUrl, token: RUNNER_TOKEN, cluster: CLUSTER, ca: path.gatewayCa });
  t.after(() => tunnel.close());

  const output = new PassThrough();
  const received: Buffer[] = [];
  let receivedBytes = 0;
  output.on('data', (c: Buffer) => {
    received.push(c);
    receivedBytes += c.length;
  });
  const input = new PassThrough();
  const ws = (await new PortForward(tunnel.kubeConfig()).portForward('default', 'web-0', [PORT], output, null, input)) as WebSocket;
  t.after(() => ws.terminate());

  // The upgrade reached the API server with the agent's credentials, on the portforward route.
  const upgrade = path.fake.requests.find((r) => r.upgrade && r.path.startsWith('/api/v1/namespaces/default/pods/web-0/portforward'));
  assert.ok(upgrade, 'the portforward upgrade reached the fake API server');
  assert.equal(upgrade.path, `/api/v1/namespaces/default/pods/web-0/portforward?ports=${PORT}`);
  assert.ok(upgrade.authorized, 'the agent authenticated the upgrade upstream');
  assert.equal(upgrade.headers.upgrade?.toLowerCase(), 'websocket');
  // client-node offers the channel protocols (v5 first), not portforward.k8s.io; the fake picked v5.
  assert.match(String(upgrade.headers['sec-websocket-protocol']), /^v5\.channel\.k8s\.io\b/);
  assert.equal(ws.protocol, 'v5.channel.k8s.io');

  const preamble = Buffer.alloc(2);
  preamble.writeUInt16LE(PORT, 0);
  input.write(preamble);
  // 256 KiB in 16 KiB writes: each write is one channel-0 message, echoed back in order.
  const payload = randomBytes(256 * 1024);
  for (let off = 0; off < payload.length; off += 16 * 1024) input.write(payload.subarray(off, off + 16 * 1024));
  await waitFor(() => receivedBytes >= payload.length, { timeoutMs: 10_000, what: 'the forwarded bytes to come back' });
  const back = Buffer.concat(received);
  assert.equal(back.length, payload.length, 'nothing but the payload came back (the preamble was consumed as the port number)');
  assert.equal(sha256(back), sha256(payload));

  // Closing the forward closes the WebSocket end to end: the fake's close frame comes back through the tunnel.
  const closed = once(ws as unknown as NodeJS.EventEmitter, 'close');
  ws.close(1000, 'done');
  const [code] = (await closed) as [number];
  assert.equal(code, 1000);
});
