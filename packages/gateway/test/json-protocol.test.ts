import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { SeenRequest } from './json-protocol-harness.ts';
import { startJsonRig, waitFor } from './json-protocol-harness.ts';

const PODS = '/api/v1/namespaces/default/pods';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('a list request gets one reply with the parsed body, lower-cased repeated headers and the request id; the runner token never travels', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  const reply = await runner.request({
    id: 'l1',
    method: 'get',
    path: PODS,
    headers: { Accept: 'application/json', Authorization: 'Bearer runner-secret-token' },
  });
  assert.equal(reply.status, 200);
  assert.deepEqual((reply.body as { items: unknown[] }).items, [{ metadata: { name: 'p1' } }, { metadata: { name: 'p2' } }]);
  const headers = reply.headers as Record<string, string[]>;
  assert.deepEqual(headers['audit-id'], ['a1', 'a2']);
  assert.deepEqual(headers['content-type'], ['application/json']);
  const requestId = headers['x-pipeops-request-id']?.[0] ?? '';
  assert.match(requestId, UUID);
  assert.equal(runner.for('l1').length, 1, 'a non-stream request is answered by exactly one message');

  const seen = rig.app.seen[0] as SeenRequest;
  assert.equal(seen.method, 'GET');
  assert.equal(seen.headers.authorization, undefined);
  assert.equal(seen.headers.accept, 'application/json');
  assert.equal(seen.headers['x-pipeops-request-id'], requestId);
  assert.deepEqual(seen.preamble, { v: 1, kind: 'http', requestId, runnerId: 'r1', cluster: 'c1' });

  await waitFor(() => rig.log.records().some((r) => r.event === 'audit' && r.route === 'ws-k8s'), 5_000, 'the request log record');
  const rec = rig.log.records().find((r) => r.event === 'audit' && r.route === 'ws-k8s') as Record<string, unknown>;
  assert.equal(rec.requestId, requestId);
  assert.equal(rec.runnerId, 'r1');
  assert.equal(rec.cluster, 'c1');
  assert.equal(rec.method, 'GET');
  assert.equal(rec.path, PODS);
  assert.equal(rec.status, 200);
  assert.equal(typeof rec.ms, 'number');
  assert.ok(!rig.log.lines.some((l) => l.includes('runner-secret-token') || /authorization/i.test(l)), 'no log line carries the token or the header');
});

test('a WATCH delivers each event as its own parsed chunk as soon as it is emitted, then done when the server ends it', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  runner.send({ id: 'w1', method: 'GET', path: PODS, query: { watch: ['true'], resourceVersion: ['7'] }, stream: true });
  const head = await runner.next((m) => m.id === 'w1');
  assert.equal(head.status, 200);
  assert.deepEqual((head.headers as Record<string, string[]>)['content-type'], ['application/json;stream=watch']);
  assert.ok(!('body' in head) && !('chunk' in head), 'the head carries no body');
  await waitFor(() => rig.app.watches.length === 1, 5_000, 'the watch to reach the API server');
  assert.equal(rig.app.seen[0]?.url, `${PODS}?watch=true&resourceVersion=7`);
  const res = rig.app.watches[0];
  assert.ok(res);
  for (let i = 0; i < 3; i++) {
    const line = JSON.stringify({ type: 'ADDED', object: { metadata: { name: `p${i}` } } });
    if (i === 1) {
      // One event split across two writes is still one chunk.
      res.write(line.slice(0, 10));
      res.write(`${line.slice(10)}\n`);
    } else {
      res.write(`${line}\n`);
    }
    const chunk = await runner.next((m) => m.id === 'w1' && 'chunk' in m, 5_000, i);
    assert.deepEqual(chunk.chunk, { type: 'ADDED', object: { metadata: { name: `p${i}` } } });
    assert.equal(runner.for('w1').filter((m) => 'chunk' in m).length, i + 1, 'events are not batched');
  }
  res.end();
  assert.deepEqual(await runner.final('w1'), { id: 'w1', done: true });
});

test('a followed log delivers one string chunk per line, including a final unterminated line', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  runner.send({ id: 'log', method: 'GET', path: `${PODS}/p1/log`, query: { follow: ['true'] }, stream: true });
  await runner.next((m) => m.id === 'log' && m.status === 200);
  await waitFor(() => rig.app.logs.length === 1, 5_000, 'the log request');
  const res = rig.app.logs[0];
  assert.ok(res);
  res.write('line one\nline two\n');
  await runner.next((m) => m.id === 'log' && m.chunk === 'line two');
  res.write('');
  res.write('\n');
  await runner.next((m) => m.id === 'log' && m.chunk === '');
  res.end('last, no newline');
  await runner.final('log');
  assert.deepEqual(
    runner
      .for('log')
      .filter((m) => 'chunk' in m)
      .map((m) => m.chunk),
    ['line one', 'line two', '', 'last, no newline'],
  );
});

test('an object body is sent as JSON with its content type, a string as is, base64 decoded, and query values are encoded', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  const decode = (r: Record<string, unknown>): string => Buffer.from((r.body as { body: string }).body, 'base64').toString('utf8');

  const obj = await runner.request({ id: 1, method: 'POST', path: '/echo', body: { kind: 'Pod', n: [1, 2] }, query: { a: ['x y', 'z&'], 'b/c': ['ü'] } });
  assert.equal(obj.status, 201);
  assert.equal((obj.body as { contentType: string }).contentType, 'application/json');
  assert.equal(decode(obj), '{"kind":"Pod","n":[1,2]}');
  assert.equal((obj.body as { query: string }).query, '?a=x%20y&a=z%26&b%2Fc=%C3%BC');

  const str = await runner.request({ id: 2, method: 'PATCH', path: '/echo', headers: { 'Content-Type': 'application/merge-patch+json' }, body: '{"a":1}' });
  assert.equal((str.body as { contentType: string }).contentType, 'application/merge-patch+json');
  assert.equal(decode(str), '{"a":1}');

  const bin = await runner.request({ id: 3, method: 'PUT', path: '/echo', body: Buffer.from([0, 255, 1]).toString('base64'), bodyEncoding: 'base64' });
  assert.deepEqual([...Buffer.from((bin.body as { body: string }).body, 'base64')], [0, 255, 1]);
});

test('a binary response is base64 with bodyEncoding, and API server errors keep their status and Status body (also for stream requests)', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  const bin = await runner.request({ id: 'b', method: 'GET', path: '/binary' });
  assert.equal(bin.bodyEncoding, 'base64');
  assert.deepEqual([...Buffer.from(bin.body as string, 'base64')], [0, 1, 2, 0xff, 0xfe]);

  const missing = await runner.request({ id: 'm', method: 'GET', path: '/api/v1/nothing' });
  assert.equal(missing.status, 404);
  assert.equal((missing.body as { reason: string }).reason, 'NotFound');

  const missingWatch = await runner.request({ id: 'mw', method: 'GET', path: '/api/v1/nothing', query: { watch: ['1'] }, stream: true });
  assert.equal(missingWatch.status, 404);
  assert.equal((missingWatch.body as { kind: string }).kind, 'Status');
  assert.equal(runner.for('mw').length, 1, 'a failed stream request is one complete reply');
});

test('a cluster that is not connected is answered 503 with a Kubernetes Status, like the HTTP route', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect({ cluster: 'c2' });
  const reply = await runner.request({ id: 'x', method: 'GET', path: PODS, stream: true });
  assert.equal(reply.status, 503);
  assert.deepEqual(reply.body, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'cluster c2 is not connected',
    reason: 'ServiceUnavailable',
    code: 503,
  });
  assert.deepEqual((reply.headers as Record<string, string[]>)['content-type'], ['application/json']);
});

test('cancel stops a WATCH: the runner gets done+cancelled and the API server sees the request aborted', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  runner.send({ id: 'w', method: 'GET', path: PODS, query: { watch: ['true'] }, stream: true });
  await runner.next((m) => m.id === 'w' && m.status === 200);
  await waitFor(() => rig.app.watches.length === 1, 5_000, 'the watch');
  const aborted = once(rig.app, 'aborted') as Promise<[SeenRequest]>;
  runner.send({ id: 'w', cancel: true });
  assert.deepEqual(await runner.final('w'), { id: 'w', done: true, cancelled: true });
  const [seen] = await aborted;
  assert.equal(seen.url, `${PODS}?watch=true`);
  await waitFor(() => rig.endpoint.stats().inFlight === 0, 5_000, 'nothing in flight');

  // A request waiting for its head is cancelled the same way, and the id can be used again.
  runner.send({ id: 'w', method: 'GET', path: '/hang' });
  await waitFor(() => rig.app.seen.some((s) => s.url === '/hang'), 5_000, 'the hanging request');
  const abortedHang = once(rig.app, 'aborted') as Promise<[SeenRequest]>;
  runner.send({ id: 'w', cancel: true });
  assert.equal((await abortedHang)[0].url, '/hang');
  assert.equal(runner.for('w').filter((m) => m.cancelled === true).length, 2);
});

test('closing the socket cancels every request it had in flight', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  runner.send({ id: 'w1', method: 'GET', path: PODS, query: { watch: ['true'] }, stream: true });
  runner.send({ id: 'w2', method: 'GET', path: `${PODS}/p1/log`, stream: true });
  await waitFor(() => rig.app.watches.length === 1 && rig.app.logs.length === 1, 5_000, 'both streams');
  const aborted: string[] = [];
  rig.app.on('aborted', (s: SeenRequest) => aborted.push(s.url));
  runner.ws.close();
  await waitFor(() => aborted.length === 2, 5_000, 'both upstream requests aborted');
  await waitFor(() => rig.endpoint.stats().sockets === 0, 5_000, 'the socket to be forgotten');
});

test('many requests interleave on one socket: watches stay open while lists and posts are answered, each event reaches its own watch', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  for (let w = 0; w < 3; w++) runner.send({ id: `w${w}`, method: 'GET', path: PODS, query: { watch: ['true'], w: [String(w)] }, stream: true });
  await waitFor(() => rig.app.watches.length === 3, 5_000, 'three watches');
  const lists = Array.from({ length: 20 }, (_, i) =>
    runner.request({ id: `l${i}`, method: i % 2 === 0 ? 'GET' : 'POST', path: i % 2 === 0 ? PODS : '/echo', body: i % 2 === 0 ? undefined : { i } }),
  );
  for (let round = 0; round < 3; round++) {
    for (const res of rig.app.watches) {
      const w = new URL(`http://x${(res.req as { url: string }).url}`).searchParams.get('w');
      res.write(`${JSON.stringify({ type: 'MODIFIED', object: { w, round } })}\n`);
    }
  }
  const replies = await Promise.all(lists);
  replies.forEach((r, i) => {
    assert.equal(r.id, `l${i}`);
    if (i % 2 === 0) assert.equal((r.body as { kind: string }).kind, 'PodList');
    else assert.equal(Buffer.from((r.body as { body: string }).body, 'base64').toString(), JSON.stringify({ i }));
  });
  for (let w = 0; w < 3; w++) {
    await runner.next((m) => m.id === `w${w}` && 'chunk' in m, 5_000, 2);
    const chunks = runner
      .for(`w${w}`)
      .filter((m) => 'chunk' in m)
      .map((m) => m.chunk as { object: { w: string; round: number } });
    assert.deepEqual(
      chunks.map((c) => [c.object.w, c.object.round]),
      [
        [String(w), 0],
        [String(w), 1],
        [String(w), 2],
      ],
    );
  }
  assert.equal(rig.endpoint.stats().inFlight, 3);
});

test('an agent that sends no head in time gets a 504 Status and the upstream request is aborted', async (t) => {
  const rig = await startJsonRig(t, { headTimeoutMs: 300 });
  const runner = await rig.connect();
  const aborted = once(rig.app, 'aborted') as Promise<[SeenRequest]>;
  const reply = await runner.request({ id: 'h', method: 'GET', path: '/hang' });
  assert.equal(reply.status, 504);
  assert.equal((reply.body as { reason: string }).reason, 'Timeout');
  assert.equal((await aborted)[0].url, '/hang');
});

test('a body over maxResponseBytes, or a WATCH line that is not JSON, is an error for that id and stops the upstream request', async (t) => {
  const rig = await startJsonRig(t, { maxResponseBytes: 100 });
  const runner = await rig.connect();
  const big = await runner.request({ id: 'big', method: 'GET', path: PODS });
  assert.equal((big.error as { code: string }).code, 'PT_ERR_JSON_RESPONSE_TOO_LARGE');

  runner.send({ id: 'w', method: 'GET', path: PODS, query: { watch: ['true'] }, stream: true });
  await waitFor(() => rig.app.watches.length === 1, 5_000, 'the watch');
  const aborted = once(rig.app, 'aborted');
  rig.app.watches[0]?.write('{"type":"ADDED"}\nnot json\n');
  const err = await runner.final('w');
  assert.equal((err.error as { code: string }).code, 'PT_ERR_JSON_UPSTREAM_MALFORMED');
  assert.deepEqual(
    runner
      .for('w')
      .filter((m) => 'chunk' in m)
      .map((m) => m.chunk),
    [{ type: 'ADDED' }],
  );
  await aborted;
});

test('close() cancels in-flight requests upstream, closes sockets with 1001 and refuses later upgrades with 503', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  runner.send({ id: 'w', method: 'GET', path: PODS, query: { watch: ['true'] }, stream: true });
  await waitFor(() => rig.app.watches.length === 1, 5_000, 'the watch');
  const aborted = once(rig.app, 'aborted');
  const closed = once(runner.ws, 'close') as Promise<[number, Buffer]>;
  await rig.endpoint.close();
  const [code, reason] = await closed;
  assert.equal(code, 1001);
  assert.equal(reason.toString(), 'gateway shutting down');
  await aborted;
  await assert.rejects(rig.connect(), /503/);
  assert.deepEqual(rig.endpoint.stats(), { sockets: 0, inFlight: 0, paused: 0, bufferedBytes: 0 });
});

test('invalid limits are refused with PT_ERR_GATEWAY_CONFIG naming the field', async () => {
  const { createJsonProtocolEndpoint } = await import('../src/json-protocol/index.ts');
  const { captureLogger } = await import('./helpers/gateway.ts');
  const base = { openStream: () => Promise.reject(new Error('unused')), logger: captureLogger().logger };
  assert.throws(() => createJsonProtocolEndpoint({ ...base, maxMessageBytes: 0 }), { code: 'PT_ERR_GATEWAY_CONFIG', message: /maxMessageBytes/ });
  assert.throws(() => createJsonProtocolEndpoint({ ...base, maxMessageBytes: 1024, maxConcurrentRequests: 1.5 }), {
    code: 'PT_ERR_GATEWAY_CONFIG',
    message: /maxConcurrentRequests/,
  });
});

test('a runner that stops answering pings is terminated and its requests are cancelled upstream', async (t) => {
  const rig = await startJsonRig(t, { pingIntervalMs: 100 });
  const live = await rig.connect();
  const silent = await rig.connect({ autoPong: false });
  silent.send({ id: 'w', method: 'GET', path: PODS, query: { watch: ['true'] }, stream: true });
  await waitFor(() => rig.app.watches.length === 1, 5_000, 'the watch');
  const aborted = once(rig.app, 'aborted');
  const [code] = (await once(silent.ws, 'close')) as [number];
  assert.equal(code, 1006, 'terminated without a closing handshake');
  await aborted;
  assert.equal((await live.request({ id: 'l', method: 'GET', path: PODS })).status, 200, 'a runner that answers pings stays');
});
