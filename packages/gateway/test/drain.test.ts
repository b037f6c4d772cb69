import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { TunnelError } from '@pipeops/tunnel-protocol';
import { connectFakeAgent, dialAgentSocket, nextMessage, pingEcho } from './helpers/fake-agent.ts';
import { T, startGateway, waitFor } from './helpers/gateway.ts';

test('close() sends reconnect and GoAway, refuses new work, and waits for an in-flight stream to finish', async (t) => {
  const gw = await startGateway(t);
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, holdPing: () => held });
  const stream = await gw.gateway.openStream('c1', { kind: 'ping', requestId: 'in-flight' });
  await waitFor(() => agent.preambles.length === 1, 5_000, 'stream reached the agent');

  const reconnect = nextMessage(agent.control, 'reconnect');
  let closed = false;
  const closing = gw.gateway.close(10_000).then(() => {
    closed = true;
  });
  assert.deepEqual(await reconnect, { type: 'reconnect', reason: 'gateway draining' });
  await waitFor(() => agent.goAways.length === 1, 5_000, 'GoAway');
  assert.deepEqual(agent.goAways, [0]);

  // While draining: not ready, new agents refused with 503, no new streams.
  const ready = await new Promise<number>((resolve, reject) => {
    request(`${gw.httpsUrl}/ready`, { ca: gw.ca }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
  assert.equal(ready, 503);
  await assert.rejects(dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2 }), (err: { status?: number }) => err.status === 503);
  await assert.rejects(gw.gateway.openStream('c1', { kind: 'ping', requestId: 'late' }), (err: unknown) => err instanceof TunnelError && err.status === 503);
  assert.equal(closed, false, 'close() waits for the in-flight stream');

  release();
  assert.equal((await pingEcho(stream, Buffer.from('finished'))).toString(), 'finished');
  await closing;
  await agent.closed;
  assert.equal(gw.gateway.server.listening, false);
  await gw.gateway.close(); // idempotent
});

test('close() gives up on streams still open at the deadline and closes anyway', async (t) => {
  const gw = await startGateway(t);
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, holdPing: () => new Promise(() => {}) });
  const stream = await gw.gateway.openStream('c1', { kind: 'ping', requestId: 'stuck' });
  stream.on('error', () => {});
  const started = Date.now();
  await gw.gateway.close(200);
  assert.ok(Date.now() - started < 3_000, 'closed near the deadline');
  await agent.closed;
  assert.equal(stream.destroyed || stream.readableEnded, true);
});
