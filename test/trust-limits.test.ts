// Issue 9, fairness: a runner over its stream or request-rate limit gets a
// 429 Status with Retry-After, on every runner route, and only that runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { fetch, request } from 'undici';
import { WebSocket } from 'ws';
import { connect } from '@pipeops/tunnel-client';
import { waitFor } from '@pipeops/tunnel-testkit';
import { startK8sPath } from './k8s-harness.ts';

const AGENT = 'kube-path-agent-token-0123456789abcdef';
const GREEDY = 'greedy-runner-token-0123456789abcdef';
const POLITE = 'polite-runner-token-0123456789abcdef';
const WATCH = '/api/v1/namespaces/default/pods?watch=1';
const PODS = '/api/v1/namespaces/default/pods';

test('a runner at max_streams gets 429 with Retry-After on /k8s/clusters and /ws/runner, until a stream ends; another runner is served', async (t) => {
  const p = await startK8sPath(t, {
    gateway: {
      tokens: {
        agents: [{ cluster: 'c1', token: AGENT }],
        runners: [
          { id: 'greedy', token: GREEDY, clusters: ['c1'], limits: { max_streams: 2 } },
          { id: 'polite', token: POLITE, clusters: ['c1'] },
        ],
      },
    },
  });
  const greedy = { authorization: `Bearer ${GREEDY}` };
  const watches = [new AbortController(), new AbortController()];
  for (const w of watches) {
    const res = await request(`${p.base}${WATCH}`, { dispatcher: p.dispatcher, headers: greedy, signal: w.signal });
    assert.equal(res.statusCode, 200);
    res.body.on('error', () => {});
  }
  const over = await request(`${p.base}${PODS}`, { dispatcher: p.dispatcher, headers: greedy });
  assert.equal(over.statusCode, 429);
  assert.equal(over.headers['retry-after'], '1');
  const status = (await over.body.json()) as { kind: string; reason: string; message: string };
  assert.equal(status.kind, 'Status');
  assert.equal(status.reason, 'TooManyRequests');
  assert.match(status.message, /max_streams 2/);
  // The same runner through tunnel-client: the limit counts its streams across routes.
  const tunnel = await connect({ gatewayUrl: p.gatewayUrl, token: GREEDY, cluster: 'c1', ca: p.gatewayCa });
  t.after(() => tunnel.close());
  const viaMux = await fetch(`${tunnel.baseUrl}${PODS}`, { dispatcher: tunnel.dispatcher });
  assert.equal(viaMux.status, 429);
  assert.equal(viaMux.headers.get('retry-after'), '1');
  await viaMux.body?.cancel();
  // And through the JSON protocol: that id gets the 429 Status, the socket stays.
  const ws = new WebSocket(`wss://127.0.0.1:${p.gatewayPort}/ws/k8s?cluster=c1`, { ca: p.gatewayCa, headers: greedy });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  const reply = once(ws, 'message');
  ws.send(JSON.stringify({ id: 'over', method: 'GET', path: PODS }));
  const json = JSON.parse(String((await reply)[0])) as { id: string; status: number; body: { reason: string } };
  assert.deepEqual({ id: json.id, status: json.status, reason: json.body.reason }, { id: 'over', status: 429, reason: 'TooManyRequests' });
  const polite = await request(`${p.base}${PODS}`, { dispatcher: p.dispatcher, headers: { authorization: `Bearer ${POLITE}` } });
  assert.equal(polite.statusCode, 200, 'another runner is not limited by the greedy one');
  await polite.body.dump();
  const metrics = await p.gatewayRegistry.metrics();
  assert.match(metrics, /pipeops_tunnel_runner_limited_total\{runner="greedy",limit="stream_limit"\} 3/);
  assert.match(metrics, /pipeops_tunnel_runner_streams_active\{runner="greedy"\} 2/);
  const denied = p.gatewayLogs.records.filter((r) => r.event === 'audit' && r.rule === 'stream_limit');
  assert.deepEqual(denied.map((r) => r.route).sort(), ['k8s', 'ws-k8s', 'ws-runner']);
  watches[0]!.abort();
  await waitFor(async () => /pipeops_tunnel_runner_streams_active\{runner="greedy"\} 1/.test(await p.gatewayRegistry.metrics()), {
    what: 'the aborted watch to release its slot',
  });
  const again = await request(`${p.base}${PODS}`, { dispatcher: p.dispatcher, headers: greedy });
  assert.equal(again.statusCode, 200);
  await again.body.dump();
  watches[1]!.abort();
});

test('a runner over requests_per_second gets 429 with Retry-After; the gateway default applies when its entry sets none', async (t) => {
  const p = await startK8sPath(t, { gateway: { runnerLimits: { requestsPerSecond: 0.5, burst: 2 } } });
  const codes: number[] = [];
  let retryAfter: string | string[] | undefined;
  for (let i = 0; i < 3; i++) {
    const res = await request(`${p.base}${PODS}`, { dispatcher: p.dispatcher, headers: p.auth });
    codes.push(res.statusCode);
    if (res.statusCode === 429) retryAfter = res.headers['retry-after'];
    await res.body.dump();
  }
  assert.deepEqual(codes, [200, 200, 429]);
  assert.equal(retryAfter, '2', 'one token at 0.5/s is two seconds away');
});

test('bytes_per_second paces one runner through the tunnel flow control: a download takes at least its size over the rate, without an error', async (t) => {
  const RATE = 1024 * 1024;
  const p = await startK8sPath(t, { gateway: { runnerLimits: { bytesPerSecond: RATE } } });
  const started = performance.now();
  const res = await request(`${p.base}/blob?bytes=${4 * RATE}`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(res.statusCode, 200);
  const body = Buffer.from(await res.body.arrayBuffer());
  const seconds = (performance.now() - started) / 1000;
  assert.equal(body.length, 4 * RATE);
  // A second's burst and the first window (256 KiB) need no waiting: the rest comes at the rate at most.
  t.diagnostic(`4 MiB at ${RATE} B/s took ${seconds.toFixed(2)} s`);
  assert.ok(seconds >= ((4 * RATE - RATE - 256 * 1024) / RATE) * 0.9, `the download took ${seconds.toFixed(2)} s: faster than the limit allows`);
});
