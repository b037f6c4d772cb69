// Every shape of exchange a runner has with the API server, end to end:
// runner (undici) → gateway /k8s/clusters/c1 (TLS) → mux stream → agent →
// fake API server (TLS, the agent's own credentials). See k8s-harness.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'undici';
import {
  blobSha256,
  blobStream,
  FAKE_COOKIES,
  FAKE_ETAG,
  FAKE_GIT_VERSION,
  FAKE_HEADER_COUNT,
  FAKE_POD_NAMES,
  FAKE_TRAILER_CHUNKS,
  FAKE_WARNINGS,
} from '@pipeops/tunnel-testkit';
import { startK8sPath } from './k8s-harness.ts';

const MiB = 1024 * 1024;

/** Reads newline-terminated lines from a body, one at a time, however the bytes were chunked. */
function lineReader(body: AsyncIterable<unknown>): { next(): Promise<string | undefined> } {
  const it = body[Symbol.asyncIterator]();
  let buffered = '';
  return {
    async next() {
      for (;;) {
        const nl = buffered.indexOf('\n');
        if (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          return line;
        }
        const { value, done } = await it.next();
        if (done === true) return buffered === '' ? undefined : buffered;
        buffered += String(value);
      }
    },
  };
}

test("GET /version and a pod list come from the API server, called with the agent's credentials and not the runner's", async (t) => {
  const p = await startK8sPath(t);
  const version = await request(`${p.base}/version`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(version.statusCode, 200);
  assert.equal(((await version.body.json()) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  const pods = await request(`${p.base}/api/v1/namespaces/default/pods?limit=10`, { dispatcher: p.dispatcher, headers: p.auth });
  const list = (await pods.body.json()) as { kind: string; items: Array<{ metadata: { name: string } }> };
  assert.equal(list.kind, 'PodList');
  assert.deepEqual(
    list.items.map((i) => i.metadata.name),
    FAKE_POD_NAMES,
  );
  const seen = p.fake.requests.find((r) => r.path === '/api/v1/namespaces/default/pods?limit=10');
  assert.ok(seen, 'the fake saw the origin-form path with /k8s/clusters/c1 stripped and the query kept');
  assert.equal(seen.authorized, true);
  assert.equal(seen.headers.authorization, `Bearer ${p.fake.token}`);
  assert.ok(
    p.fake.requests.every((r) => !JSON.stringify(r.rawHeaders).includes(p.auth.authorization ?? '')),
    'the runner token never reached the API server',
  );
});

test('WATCH events arrive one by one: each reaches the runner before the fake emits the next, and watch.end() ends the body', async (t) => {
  const p = await startK8sPath(t);
  const res = await request(`${p.base}/api/v1/namespaces/default/pods?watch=1&resourceVersion=1000`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /application\/json/);
  await p.fake.watch.waitForWatchers();
  const lines = lineReader(res.body);
  for (const [i, name] of ['p-1', 'p-2', 'p-3', 'p-4'].entries()) {
    assert.equal(p.fake.watch.emit({ metadata: { name } }, i === 3 ? 'DELETED' : 'ADDED'), 1);
    // The next emit happens only after this event was read at the runner: nothing waits for a buffer to fill.
    assert.deepEqual(JSON.parse((await lines.next()) ?? 'null'), { type: i === 3 ? 'DELETED' : 'ADDED', object: { metadata: { name } } });
  }
  p.fake.watch.end();
  assert.equal(await lines.next(), undefined, 'the runner sees the end when the API server ends the watch');
});

test('logs -f trickles line by line to the runner', async (t) => {
  const p = await startK8sPath(t);
  const res = await request(`${p.base}/api/v1/namespaces/default/pods/web-0/log?follow=true&container=main`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(res.statusCode, 200);
  await p.fake.logs.waitForFollowers();
  const lines = lineReader(res.body);
  for (const line of ['booting', 'serving on :8080', 'GET /healthz 200']) {
    p.fake.logs.write(line);
    assert.equal(await lines.next(), line);
  }
  p.fake.logs.end();
  assert.equal(await lines.next(), undefined);
});

test('a 64 MiB response and a 64 MiB upload arrive intact (SHA-256 checked at the far end)', async (t) => {
  const p = await startK8sPath(t);
  const bytes = 64 * MiB;
  const down = await request(`${p.base}/blob?bytes=${bytes}&seed=down`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(down.statusCode, 200);
  const hash = createHash('sha256');
  let n = 0;
  for await (const chunk of down.body) {
    hash.update(chunk as Buffer);
    n += (chunk as Buffer).length;
  }
  assert.equal(n, bytes);
  assert.equal(hash.digest('hex'), blobSha256(bytes, 'down'));

  const up = await request(`${p.base}/sink`, {
    dispatcher: p.dispatcher,
    method: 'POST',
    headers: { ...p.auth, 'content-type': 'application/octet-stream' },
    body: blobStream(bytes, 'up'),
  });
  assert.equal(up.statusCode, 200);
  assert.deepEqual(await up.body.json(), { bytes, sha256: blobSha256(bytes, 'up') });
});

test('HEAD, 204 and 304 come back without a body and with their headers', async (t) => {
  const p = await startK8sPath(t);
  const head = await request(`${p.base}/version`, { dispatcher: p.dispatcher, headers: p.auth, method: 'HEAD' });
  assert.equal(head.statusCode, 200);
  assert.match(String(head.headers['content-type']), /application\/json/);
  assert.equal(await head.body.text(), '');
  const none = await request(`${p.base}/nocontent`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(none.statusCode, 204);
  assert.equal(await none.body.text(), '');
  const fresh = await request(`${p.base}/etag`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(fresh.statusCode, 200);
  assert.equal(fresh.headers.etag, FAKE_ETAG);
  await fresh.body.dump();
  const cached = await request(`${p.base}/etag`, { dispatcher: p.dispatcher, headers: { ...p.auth, 'if-none-match': FAKE_ETAG } });
  assert.equal(cached.statusCode, 304);
  assert.equal(cached.headers.etag, FAKE_ETAG);
  assert.equal(await cached.body.text(), '');
  // The connection is still good after bodiless responses.
  const after = await request(`${p.base}/readyz`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(await after.body.text(), 'ok');
});

test('many and repeated headers are preserved both ways, repeated values in order; the request id is in the header and both logs', async (t) => {
  const p = await startK8sPath(t);
  const res = await request(`${p.base}/headers`, {
    dispatcher: p.dispatcher,
    headers: ['authorization', p.auth.authorization ?? '', 'x-rep', 'first', 'x-rep', 'second', 'x-rep', 'third', 'accept', 'application/json'],
  });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.headers.warning, FAKE_WARNINGS);
  assert.deepEqual(res.headers['set-cookie'], FAKE_COOKIES);
  for (let i = 0; i < FAKE_HEADER_COUNT; i++) assert.equal(res.headers[`x-fake-${i}`], `value-${i}`);
  const requestId = res.headers['x-pipeops-request-id'];
  assert.equal(typeof requestId, 'string');
  const echo = (await res.body.json()) as { headers: Record<string, string>; rawHeaders: string[] };
  const reps: string[] = [];
  for (let i = 0; i < echo.rawHeaders.length; i += 2) if (echo.rawHeaders[i]?.toLowerCase() === 'x-rep') reps.push(echo.rawHeaders[i + 1] ?? '');
  assert.deepEqual(
    reps.flatMap((v) => v.split(',').map((s) => s.trim())),
    ['first', 'second', 'third'],
  );
  assert.equal(echo.headers.authorization, `Bearer ${p.fake.token}`);

  const logged = (r: Record<string, unknown>) => JSON.stringify(r).includes(String(requestId));
  assert.ok(p.gatewayLogs.find(logged), 'the gateway logged the request with its id');
  assert.ok(p.agentLogs.find(logged), 'the agent logged the request with its id');
  for (const secret of p.secrets) {
    assert.ok(!p.gatewayLogs.text().includes(secret), 'no token in the gateway logs');
    assert.ok(!p.agentLogs.text().includes(secret), 'no token in the agent logs');
  }
});

test('trailers reach the runner; a created object comes back 201', async (t) => {
  const p = await startK8sPath(t);
  const tr = await request(`${p.base}/trailers`, { dispatcher: p.dispatcher, headers: { ...p.auth, te: 'trailers' } });
  assert.equal(await tr.body.text(), FAKE_TRAILER_CHUNKS.join(''));
  assert.equal(tr.trailers['x-checksum'], createHash('sha256').update(FAKE_TRAILER_CHUNKS.join('')).digest('hex'));
  const cm = await request(`${p.base}/api/v1/namespaces/default/configmaps`, {
    dispatcher: p.dispatcher,
    method: 'POST',
    headers: { ...p.auth, 'content-type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'through-the-tunnel' }, data: { a: 'b' } }),
  });
  assert.equal(cm.statusCode, 201);
  const created = (await cm.body.json()) as { metadata: { name: string; uid: string }; data: unknown };
  assert.equal(created.metadata.name, 'through-the-tunnel');
  assert.deepEqual(created.data, { a: 'b' });
});
