// Issue 13, item 3: the gateway's stream accounting holds for every kind and
// every way a stream ends. `pipeops_tunnel_streams_opened_total{kind}` =
// `pipeops_tunnel_streams_total{kind}` (every result) +
// `pipeops_tunnel_streams_active{kind}`, at every moment, with active back to
// 0 once the streams are gone: what the soak (tools/soak) checks from
// /metrics after 100,000 streams. The real gateway over TLS, the agent's
// test double (echoes ping streams, resets every other kind).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import { assertStreamInvariant, streamAccounting, type StreamCounts } from '@pipeops/tunnel-testkit';
import { connectFakeAgent, pingEcho } from './helpers/fake-agent.ts';
import { T, startGateway, waitFor } from './helpers/gateway.ts';

const KINDS = ['http', 'ping', 'control', 'other'] as const;

/** The three numbers of each kind, from the registry as /metrics serves it. */
const accounting = (registry: Registry): Promise<Record<string, StreamCounts>> => streamAccounting(registry, KINDS);

/** Resolves once `s` has closed (at once if it already has), however it ended. */
async function closed(s: Duplex): Promise<void> {
  if (!s.closed) await new Promise((resolve) => s.once('close', resolve));
}

test('opened = closed + active per kind, through completed, aborted, reset and refused streams and a lost agent', async (t) => {
  const gw = await startGateway(t);
  let release: () => void = () => {};
  let holding = false;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, holdPing: () => (holding ? held : Promise.resolve()) });

  const before = await accounting(gw.registry);
  for (const kind of KINDS) assert.deepEqual(before[kind], { opened: 0, closed: 0, active: 0 }, `${kind} series exist at 0 from the start`);

  // ping, completed: echoed intact.
  for (let i = 0; i < 3; i++) {
    const s = await gw.gateway.openStream('c1', { kind: 'ping', requestId: `ok-${i}`, runnerId: 'r1' });
    const data = randomBytes(64 * 1024);
    assert.ok((await pingEcho(s, data)).equals(data));
    await closed(s);
  }
  // http: the double resets it (the agent refusing or failing a request).
  for (let i = 0; i < 2; i++) {
    const s = await gw.gateway.openStream('c1', { kind: 'http', requestId: `reset-${i}`, runnerId: 'r1' });
    s.on('error', () => {});
    s.resume();
    await closed(s);
  }
  // ping, aborted mid-stream by the runner's side (the gateway destroys its end).
  const aborted = await gw.gateway.openStream('c1', { kind: 'ping', requestId: 'aborted', runnerId: 'r1' });
  aborted.on('error', () => {});
  aborted.write('half');
  aborted.destroy();
  await closed(aborted);

  // Held open: active while the agent holds them, then lost with the agent's session.
  holding = true;
  const open: Duplex[] = [];
  for (let i = 0; i < 4; i++) {
    const s = await gw.gateway.openStream('c1', { kind: i % 2 === 0 ? 'ping' : 'http', requestId: `held-${i}`, runnerId: 'r1' });
    s.on('error', () => {});
    s.write('x');
    open.push(s);
  }
  await waitFor(() => agent.preambles.filter((p) => p.requestId.startsWith('held-')).length === 4, 5_000, 'held streams reached the agent');
  const during = await accounting(gw.registry);
  assertStreamInvariant(during, 'while held');
  // Two held http streams were reset by the double already; the two pings are still open.
  await waitFor(() => gw.gateway.clusters()[0]?.streamsActive === 2, 5_000, 'two pings held');
  assert.equal((await accounting(gw.registry)).ping!.active, 2);

  // The agent opens a data stream of its own: refused as `other`, never active.
  const unexpected = agent.session.open();
  unexpected.on('error', () => {});
  unexpected.write('hello?');
  await closed(unexpected);

  // The agent's connection is lost with streams open.
  const lost = once(gw.gateway, 'agent-disconnected');
  agent.ws.terminate();
  await lost;
  release();
  await Promise.all(open.map(closed));

  const after = await accounting(gw.registry);
  assertStreamInvariant(after, 'at the end');
  assert.deepEqual(after, {
    http: { opened: 4, closed: 4, active: 0 },
    ping: { opened: 6, closed: 6, active: 0 },
    control: { opened: 0, closed: 0, active: 0 },
    other: { opened: 1, closed: 1, active: 0 },
  });
  const metrics = await gw.registry.metrics();
  // The held pings lost with the agent ended in error; the echoed ones ok (a local destroy without an error counts ok too).
  assert.match(metrics, /pipeops_tunnel_streams_total\{kind="ping",result="error"\} 2/);
  assert.match(metrics, /pipeops_tunnel_streams_total\{kind="http",result="reset"\} 4/);
  assert.match(metrics, /pipeops_tunnel_streams_total\{kind="other",result="refused"\} 1/);
  assert.match(metrics, /pipeops_tunnel_streams_opened_total\{kind="http"\} 4/);
});
