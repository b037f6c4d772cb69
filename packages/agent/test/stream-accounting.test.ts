// Issue 13, item 3: the agent's stream accounting holds for every kind and
// every way a stream ends. `pipeops_tunnel_streams_opened_total{kind}` =
// `pipeops_tunnel_streams_total{kind}` (every result) +
// `pipeops_tunnel_streams_active{kind}`, at every moment, with active back to
// 0 once the streams are gone: what the soak (tools/soak) checks from
// /metrics after 100,000 streams. Real parts: the agent's dispatcher and
// Kubernetes path on a mux session pair, the fake API server upstream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import { FAKE_POD_NAMES, waitFor, assertStreamInvariant, streamAccounting, type StreamCounts } from '@pipeops/tunnel-testkit';
import { metricValue, readAll, startHarnessOnFake } from './helpers/kube-harness.ts';

const KINDS = ['http', 'ping', 'unknown'] as const;

/** The three numbers of each kind, from the registry as /metrics serves it. */
const accounting = (registry: Registry): Promise<Record<string, StreamCounts>> => streamAccounting(registry, KINDS, ['unknown']);

/** Resolves once `s` has closed (at once if it already has), however it ended. */
async function closed(s: Duplex): Promise<void> {
  if (!s.closed) await new Promise((resolve) => s.once('close', resolve));
}

function get(stream: Duplex, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    httpRequest({ createConnection: () => stream as never, path }, resolve)
      .on('error', reject)
      .end();
  });
}

test('opened = closed + active per kind, through completed, aborted, reset and refused streams', { timeout: 20_000 }, async (t) => {
  const { h } = await startHarnessOnFake(t);
  h.kube.start();

  const before = await accounting(h.registry);
  for (const kind of KINDS) assert.deepEqual(before[kind], { opened: 0, closed: 0, active: 0 }, `${kind} series exist at 0 from the start`);

  // http, completed: lists and a 1 MiB body.
  for (const path of ['/api/v1/namespaces/default/pods', '/api/v1/namespaces/default/pods', `/blob?bytes=${1024 * 1024}`]) {
    const s = h.open();
    const res = await get(s, path);
    assert.equal(res.statusCode, 200);
    await readAll(res);
    s.end();
    await closed(s);
  }
  // http WATCHes and a followed log, held open: counted active while they run.
  const held: Duplex[] = [];
  for (const path of [
    '/api/v1/namespaces/default/pods?watch=true',
    '/api/v1/namespaces/default/pods?watch=1',
    `/api/v1/namespaces/default/pods/${FAKE_POD_NAMES[0]}/log?follow=true`,
  ]) {
    const s = h.open();
    const res = await get(s, path);
    assert.equal(res.statusCode, 200, path);
    res.resume();
    held.push(s);
  }
  // ping, completed and aborted mid-stream by the gateway's side.
  const pingOk = h.open({ kind: 'ping' });
  pingOk.end('echo me');
  assert.equal((await readAll(pingOk)).toString(), 'echo me');
  const pingHeld = h.open({ kind: 'ping' });
  pingHeld.write('first half');
  await once(pingHeld, 'readable');
  held.push(pingHeld);

  await waitFor(async () => (await accounting(h.registry)).http!.active === 3 && (await accounting(h.registry)).ping!.active === 1, {
    what: 'held streams active',
  });
  assertStreamInvariant(await accounting(h.registry), 'while held');

  // A preamble that is not one: refused as `unknown`, never active.
  const bad = h.gateway.open();
  bad.on('error', () => {});
  bad.end('this is not a preamble\n');
  await closed(bad);

  // The runner goes away mid-stream: every held stream is reset from the gateway's side.
  for (const s of held) s.destroy();
  // And one http stream reset right after its preamble, before any request:
  // counted `http` if the preamble was read before the reset arrived, else
  // refused as `unknown`; either way once.
  const early = h.open();
  early.destroy();

  const after = await waitFor(
    async () => {
      const a = await accounting(h.registry);
      return a.http!.active === 0 && a.ping!.active === 0 && a.http!.opened + a.unknown!.opened === 8 ? a : undefined;
    },
    { what: 'every stream accounted as closed' },
  );
  assertStreamInvariant(after, 'at the end');
  const lateReset = after.unknown!.opened - 1;
  assert.deepEqual(after, {
    http: { opened: 7 - lateReset, closed: 7 - lateReset, active: 0 },
    ping: { opened: 2, closed: 2, active: 0 },
    unknown: { opened: 1 + lateReset, closed: 1 + lateReset, active: 0 },
  });
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_streams_total', { kind: 'unknown', result: 'refused' }), 1 + lateReset);
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_streams_total', { kind: 'ping', result: 'reset' }), 1);
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_streams_total', { kind: 'ping', result: 'ok' }), 1);
  assert.ok((await metricValue(h.registry, 'pipeops_tunnel_streams_total', { kind: 'http', result: 'ok' })) >= 3);
});
