// The agents' endpoint when its own code fails during an upgrade (a bug in
// the session set-up, here a throwing onAgent): the agent's socket is closed,
// the failure is logged with its event, and the gateway process lives on
// (no unhandled rejection, which would end it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import WebSocket from 'ws';
import { SUBPROTOCOL } from '@pipeops/tunnel-protocol';
import { collectLogs, waitFor } from '@pipeops/tunnel-testkit';
import { GatewayMetrics } from '../src/metrics.ts';
import { TokenStore } from '../src/tokens.ts';
import { TunnelEndpoint } from '../src/tunnel-endpoint.ts';

const AGENT_TOKEN = 'endpoint-failure-agent-token-0123456789';

test('an upgrade whose session set-up throws closes the agent socket and logs it; the gateway lives on', async (t) => {
  const logs = collectLogs();
  const tokens = new TokenStore({ agents: [{ cluster: 'c1', token: AGENT_TOKEN }], runners: [], admins: [] });
  const endpoint = new TunnelEndpoint({
    logger: logs.logger('debug'),
    metrics: new GatewayMetrics(new Registry(), { collectDefaultMetrics: false }),
    maxPayloadBytes: 1 << 20,
    tokens: () => tokens,
    draining: () => false,
    held: async () => false,
    onAgent: () => {
      throw new Error('a bug in the session set-up');
    },
  });
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown): void => {
    unhandled.push(err);
  };
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  const server = createServer();
  server.on('upgrade', (req, socket, head) => endpoint.handleUpgrade(req, socket, head));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    await endpoint.close();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  for (let i = 0; i < 2; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/tunnel`, SUBPROTOCOL, { headers: { authorization: `Bearer ${AGENT_TOKEN}` } });
    ws.on('error', () => {});
    const [code] = (await once(ws, 'close')) as [number];
    assert.notEqual(code, 1000, 'not a clean close: the session never started');
  }
  const failed = await waitFor(() => logs.records.filter((r) => r.event === 'agent_upgrade_failed'));
  assert.equal(failed.length, 2);
  assert.match(String((failed[0]?.err as { message?: string } | undefined)?.message), /a bug in the session set-up/);
  // A turn for any rejection to be reported.
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(unhandled, []);
  assert.ok(
    logs.lines.every((l) => !l.includes(AGENT_TOKEN)),
    'the token is never logged',
  );
});
