import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  FAKE_COOKIES,
  FAKE_ETAG,
  FAKE_GIT_VERSION,
  FAKE_HEADER_COUNT,
  FAKE_TRAILER_CHUNKS,
  FAKE_WARNINGS,
  blobSha256,
  blobStream,
  startCanaryServer,
  waitFor,
} from '@pipeops/tunnel-testkit';
import { metricValue, readAll, startHarnessOnFake } from './helpers/kube-harness.ts';

const setup = startHarnessOnFake;

test('a GET is replayed with the agent token, never the runner one, and logged once without secrets', async (t) => {
  const { fake, h } = await setup(t);
  const { res } = await h.request({
    path: '/version',
    requestId: 'req-42',
    headers: { authorization: 'Bearer runner-secret', 'x-pipeops-request-id': 'req-42', host: 'gateway.example:443' },
  });
  assert.equal(res.statusCode, 200);
  assert.equal(JSON.parse((await readAll(res)).toString()).gitVersion, FAKE_GIT_VERSION);
  const seen = fake.requests.at(-1);
  assert.ok(seen?.authorized, 'the API server saw the agent token');
  assert.equal(seen.headers.authorization, `Bearer ${fake.token}`);
  assert.equal(seen.headers.host, `127.0.0.1:${String(fake.port)}`);
  assert.equal(seen.headers['x-pipeops-request-id'], undefined);
  await waitFor(() => h.logs.find((r) => r.msg === 'kube request'));
  const rec = h.logs.find((r) => r.msg === 'kube request');
  assert.equal(rec?.requestId, 'req-42');
  assert.equal(rec?.runnerId, 'runner-1');
  assert.equal(rec?.method, 'GET');
  assert.equal(rec?.path, '/version');
  assert.equal(rec?.status, 200);
  assert.equal(rec?.verb, 'get');
  assert.ok(typeof rec?.bytesOut === 'number' && rec.bytesOut > 0);
  assert.ok(!h.logs.text().includes('runner-secret') && !h.logs.text().includes(fake.token), 'no token in any log line');
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_k8s_requests_total', { verb: 'get', code: '2xx' }), 1);
});

test('absolute-form, CONNECT, asterisk-form, // and double Host are refused with 400 Status and never dialled', async (t) => {
  const { fake, h } = await setup(t);
  const canary = await startCanaryServer();
  t.after(() => canary.close());
  const tricks = [
    `GET ${canary.url}/api/v1/pods HTTP/1.1\r\nHost: 127.0.0.1:${String(canary.port)}\r\n\r\n`,
    `CONNECT 127.0.0.1:${String(canary.port)} HTTP/1.1\r\nHost: 127.0.0.1:${String(canary.port)}\r\n\r\n`,
    'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
    `GET //127.0.0.1:${String(canary.port)}/x HTTP/1.1\r\nHost: x\r\n\r\n`,
    `GET /version HTTP/1.1\r\nHost: x\r\nHost: 127.0.0.1:${String(canary.port)}\r\n\r\n`,
    `GET /version HTTP/1.1\r\nHost: user@127.0.0.1:${String(canary.port)}\r\n\r\n`,
  ];
  for (const trick of tricks) {
    const text = await h.raw(trick);
    assert.match(text, /^HTTP\/1\.1 400 /, trick);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    assert.equal(body.kind, 'Status');
    assert.equal(body.code, 400);
    assert.equal(body.reason, 'BadRequest');
  }
  assert.equal(canary.hits.length, 0);
  assert.equal(fake.requests.length, 0);
});

test('a Host naming another server is only ever sent to the configured API server', async (t) => {
  const { fake, h } = await setup(t);
  const canary = await startCanaryServer();
  t.after(() => canary.close());
  const { res } = await h.request({ path: '/version', headers: { host: `127.0.0.1:${String(canary.port)}` } });
  await readAll(res);
  assert.equal(canary.hits.length, 0);
  assert.equal(fake.requests.at(-1)?.headers.host, `127.0.0.1:${String(fake.port)}`);
});

test('a WATCH event reaches the runner while the response is still open, one event at a time', async (t) => {
  const { fake, h } = await setup(t);
  const { res } = await h.request({ path: '/api/v1/namespaces/default/pods?watch=1' });
  assert.equal(res.statusCode, 200);
  await fake.watch.waitForWatchers();
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_k8s_watches_active'), 1);
  for (const name of ['a', 'b', 'c']) {
    const got = once(res, 'data');
    fake.watch.emit({ metadata: { name } });
    const [chunk] = (await got) as [Buffer];
    assert.equal((JSON.parse(chunk.toString()) as { object: { metadata: { name: string } } }).object.metadata.name, name);
  }
  fake.watch.end();
  await once(res, 'end');
  await waitFor(() => h.logs.find((r) => r.msg === 'kube request' && r.verb === 'watch'));
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_k8s_watches_active'), 0);
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_k8s_requests_total', { verb: 'watch', code: '2xx' }), 1);
});

test('big bodies pass both ways intact (hash-checked)', async (t) => {
  const { h } = await setup(t);
  const bytes = 6 * 1024 * 1024;
  const down = await h.request({ path: `/blob?bytes=${String(bytes)}&seed=down` });
  assert.equal(down.res.headers['content-length'], String(bytes));
  assert.equal(
    createHash('sha256')
      .update(await readAll(down.res))
      .digest('hex'),
    blobSha256(bytes, 'down'),
  );
  const up = await h.request({ method: 'POST', path: '/sink', body: blobStream(bytes, 'up'), headers: { 'content-type': 'application/octet-stream' } });
  const answer = JSON.parse((await readAll(up.res)).toString()) as { bytes: number; sha256: string };
  assert.deepEqual(answer, { bytes, sha256: blobSha256(bytes, 'up') });
});

test('a runner that stops reading stops the API server writing (memory stays bounded)', async (t) => {
  const { fake, h } = await setup(t);
  const { res } = await h.request({ path: '/blob?bytes=268435456&seed=slow' });
  res.pause();
  // Wait until the fake's sent-byte counter stops moving, then check where it stopped.
  let last = -1;
  await waitFor(
    async () => {
      const now = fake.stats.blobBytesSent;
      const stable = now > 0 && now === last;
      last = now;
      await new Promise((r) => setImmediate(r));
      return stable && (await new Promise<boolean>((r) => setTimeout(() => r(fake.stats.blobBytesSent === now), 200)));
    },
    { timeoutMs: 10_000 },
  );
  assert.ok(fake.stats.blobBytesSent < 16 * 1024 * 1024, `the API server sent ${String(fake.stats.blobBytesSent)} bytes to a paused runner`);
  res.destroy();
});

test('HEAD, 204 and 304 answers carry no body and keep their headers', async (t) => {
  const { h } = await setup(t);
  const head = await h.request({ method: 'HEAD', path: '/version' });
  assert.equal(head.res.statusCode, 200);
  assert.ok(Number(head.res.headers['content-length']) > 0);
  assert.equal((await readAll(head.res)).length, 0);
  const none = await h.request({ path: '/nocontent' });
  assert.equal(none.res.statusCode, 204);
  assert.equal((await readAll(none.res)).length, 0);
  const nm = await h.request({ path: '/etag', headers: { 'if-none-match': FAKE_ETAG } });
  assert.equal(nm.res.statusCode, 304);
  assert.equal(nm.res.headers.etag, FAKE_ETAG);
  assert.equal((await readAll(nm.res)).length, 0);
});

test('repeated and many headers keep their order and repeats; trailers arrive', async (t) => {
  const { h } = await setup(t);
  const { res } = await h.request({ path: '/headers' });
  await readAll(res);
  const raw = res.rawHeaders;
  const values = (name: string): string[] => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]?.toLowerCase() === name);
  assert.deepEqual(values('warning'), [...FAKE_WARNINGS]);
  assert.deepEqual(values('set-cookie'), [...FAKE_COOKIES]);
  for (let i = 0; i < FAKE_HEADER_COUNT; i++) assert.deepEqual(values(`x-fake-${String(i)}`), [`value-${String(i)}`]);
  const tr = await h.request({ path: '/trailers' });
  assert.equal((await readAll(tr.res)).toString(), FAKE_TRAILER_CHUNKS.join(''));
  assert.equal(tr.res.trailers['x-checksum'], createHash('sha256').update(FAKE_TRAILER_CHUNKS.join('')).digest('hex'));
});

test('a runner that resets its stream aborts the upstream request within a second', async (t) => {
  const { fake, h } = await setup(t);
  const stream = h.open();
  stream.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor(() => fake.requests.some((r) => r.path === '/hang'));
  const resetAt = Date.now();
  stream.destroy();
  const aborted = await fake.aborted.wait((r) => r.path === '/hang', 2_000);
  assert.ok(aborted.abortedAt - resetAt < 1_000, `aborted after ${String(aborted.abortedAt - resetAt)} ms`);
});

test('an API server that drops the connection mid-body resets the runner stream, and an unreachable one answers 502 Status', async (t) => {
  const { fake, h } = await setup(t);
  const { res, stream } = await h.request({ path: '/blob?bytes=67108864&seed=cut' });
  res.on('error', () => {});
  await once(res, 'data');
  res.pause();
  const closed = new Promise((resolve) => stream.once('close', resolve));
  await fake.close();
  await closed;
  assert.equal(res.complete, false, 'the runner sees an incomplete response, never a clean end');
  const again = await h.request({ path: '/version' });
  assert.equal(again.res.statusCode, 502);
  const body = JSON.parse((await readAll(again.res)).toString()) as Record<string, unknown>;
  assert.deepEqual(
    { kind: body.kind, status: body.status, code: body.code, reason: body.reason },
    { kind: 'Status', status: 'Failure', code: 502, reason: 'BadGateway' },
  );
  assert.ok((await metricValue(h.registry, 'pipeops_tunnel_k8s_upstream_errors_total', { reason: 'connect' })) >= 1);
});
