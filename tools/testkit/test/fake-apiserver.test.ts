import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import {
  blobSha256,
  blobStream,
  FAKE_COOKIES,
  FAKE_ETAG,
  FAKE_GIT_VERSION,
  FAKE_HEADER_COUNT,
  FAKE_LOG_LINES,
  FAKE_POD_NAMES,
  FAKE_TRAILER_CHUNKS,
  FAKE_WARNINGS,
  startFakeApiServer,
  testCertificates,
  waitFor,
  type FakeApiServer,
} from '../src/index.ts';

async function start(t: TestContext): Promise<{ fake: FakeApiServer; dispatcher: Agent; auth: Record<string, string> }> {
  const fake = await startFakeApiServer();
  const dispatcher = new Agent({ connect: { ca: fake.caCert } });
  t.after(async () => {
    await dispatcher.close();
    await fake.close();
  });
  return { fake, dispatcher, auth: { authorization: `Bearer ${fake.token}` } };
}

test("a request without the fake's own token gets a 401 Status and is recorded as unauthorized", async (t) => {
  const { fake, dispatcher } = await start(t);
  const res = await request(`${fake.url}/version`, { dispatcher, headers: { authorization: 'Bearer runner-token' } });
  assert.equal(res.statusCode, 401);
  assert.deepEqual(await res.body.json(), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'Unauthorized',
    reason: 'Unauthorized',
    code: 401,
  });
  assert.equal(fake.requests.at(-1)?.authorized, false);
});

test('its certificate is signed by its own CA, not the default test CA', async (t) => {
  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  const wrong = new Agent({ connect: { ca: testCertificates().caCert } });
  t.after(() => wrong.close());
  await assert.rejects(request(`${fake.url}/readyz`, { dispatcher: wrong }), /certificate|self.signed|verify/i);
});

test('version, readyz, discovery, pods and logs answer like the API server', async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  const json = async (path: string) => (await request(`${fake.url}${path}`, { dispatcher, headers: auth })).body.json() as Promise<Record<string, unknown>>;
  assert.equal((await json('/version')).gitVersion, FAKE_GIT_VERSION);
  assert.equal(await (await request(`${fake.url}/readyz`, { dispatcher, headers: auth })).body.text(), 'ok');
  assert.equal((await json('/api')).kind, 'APIVersions');
  assert.equal((await json('/apis')).kind, 'APIGroupList');
  const pods = (await json('/api/v1/namespaces/default/pods')) as { kind: string; items: Array<{ metadata: { name: string } }> };
  assert.equal(pods.kind, 'PodList');
  assert.deepEqual(
    pods.items.map((p) => p.metadata.name),
    FAKE_POD_NAMES,
  );
  const log = await request(`${fake.url}/api/v1/namespaces/default/pods/web-0/log`, { dispatcher, headers: auth });
  assert.equal(await log.body.text(), FAKE_LOG_LINES.map((l) => `${l}\n`).join(''));
  const head = await request(`${fake.url}/version`, { dispatcher, headers: auth, method: 'HEAD' });
  assert.equal(head.statusCode, 200);
  assert.equal(await head.body.text(), '');
  assert.ok(fake.requests.every((r) => r.authorized));
});

test('a watch writes each emitted event as its own line as soon as it is emitted, and ends on watch.end()', async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  const res = await request(`${fake.url}/api/v1/namespaces/default/pods?watch=1`, { dispatcher, headers: auth });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['transfer-encoding'], 'chunked');
  await fake.watch.waitForWatchers();
  const it = res.body[Symbol.asyncIterator]();
  for (const name of ['a', 'b', 'c']) {
    assert.equal(fake.watch.emit({ metadata: { name } }), 1);
    const { value } = await it.next();
    assert.deepEqual(JSON.parse(String(value)), { type: 'ADDED', object: { metadata: { name } } });
  }
  fake.watch.end();
  assert.equal((await it.next()).done, true);
});

test('a followed log trickles one line per logs.write', async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  const res = await request(`${fake.url}/api/v1/namespaces/default/pods/web-0/log?follow=true`, { dispatcher, headers: auth });
  await fake.logs.waitForFollowers();
  const it = res.body[Symbol.asyncIterator]();
  fake.logs.write('one');
  assert.equal(String((await it.next()).value), 'one\n');
  fake.logs.write('two');
  assert.equal(String((await it.next()).value), 'two\n');
  fake.logs.end();
  assert.equal((await it.next()).done, true);
});

/** Reads `body` until `n` newline-ended lines arrived (or it ended). */
async function lines(body: AsyncIterable<unknown>, n: number): Promise<string[]> {
  let text = '';
  for await (const chunk of body) {
    text += String(chunk);
    if (text.split('\n').length > n) break;
  }
  return text.split('\n').filter((l) => l !== '');
}

test('a watch from a resourceVersion replays the changes after it; bookmarks go to the watches that asked', async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  const list = await request(`${fake.url}/api/v1/namespaces/default/pods`, { dispatcher, headers: auth });
  const listRv = ((await list.body.json()) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
  assert.equal(listRv, '1000');
  assert.equal(fake.watch.change({ metadata: { name: 'a' } }), '1001');
  assert.equal(fake.watch.change({ metadata: { name: 'b' } }, 'MODIFIED'), '1002');
  const res = await request(`${fake.url}/api/v1/namespaces/default/pods?watch=1&resourceVersion=1001&allowWatchBookmarks=true`, { dispatcher, headers: auth });
  assert.equal(res.statusCode, 200);
  await fake.watch.waitForWatchers();
  const plain = await request(`${fake.url}/api/v1/namespaces/default/pods?watch=1`, { dispatcher, headers: auth });
  await fake.watch.waitForWatchers(2);
  assert.equal(fake.watch.bookmark(), 1, 'only the watch that asked');
  fake.watch.change({ metadata: { name: 'c' } });
  const got = (await lines(res.body, 3)).map((l) => JSON.parse(l) as { type: string; object: { metadata: { name?: string; resourceVersion: string } } });
  assert.deepEqual(
    got.map((e) => `${e.type}:${e.object.metadata.name ?? ''}@${e.object.metadata.resourceVersion}`),
    ['MODIFIED:b@1002', 'BOOKMARK:@1002', 'ADDED:c@1003'],
  );
  assert.deepEqual(
    (await lines(plain.body, 1)).map((l) => (JSON.parse(l) as { type: string }).type),
    ['ADDED'],
    'from now: no replay, no bookmark',
  );
  assert.equal(fake.watch.resourceVersion, '1003');
});

test('after compact() a watch from an older resourceVersion gets 410 Expired, as an ERROR event or as the HTTP status', async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  fake.watch.change({ metadata: { name: 'a' } });
  fake.watch.compact();
  const res = await request(`${fake.url}/api/v1/namespaces/default/pods?watch=true&resourceVersion=1000`, { dispatcher, headers: auth });
  assert.equal(res.statusCode, 200);
  const [error] = (await res.body.text()).split('\n').map((l) => JSON.parse(l || 'null') as { type: string; object: { code: number; reason: string } } | null);
  assert.deepEqual([error?.type, error?.object.code, error?.object.reason], ['ERROR', 410, 'Expired']);
  const fresh = await request(`${fake.url}/api/v1/namespaces/default/pods?watch=true&resourceVersion=1001`, { dispatcher, headers: auth });
  assert.equal(fresh.statusCode, 200, 'from the compaction point on is fine');
  fresh.body.destroy();
  fake.watch.compact('status');
  const refused = await request(`${fake.url}/api/v1/namespaces/default/pods?watch=true&resourceVersion=1000`, { dispatcher, headers: auth });
  assert.equal(refused.statusCode, 410);
  assert.equal(((await refused.body.json()) as { reason: string }).reason, 'Expired');
});

test('a followed log with timestamps prefixes each line; sinceTime replays from that second on', async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  fake.logs.write('old', '2030-01-01T00:00:04.9Z');
  fake.logs.write('one', '2030-01-01T00:00:05.25Z');
  const res = await request(`${fake.url}/api/v1/namespaces/default/pods/web-0/log?follow=true&timestamps=true&sinceTime=2030-01-01T00:00:05.5Z`, {
    dispatcher,
    headers: auth,
  });
  await fake.logs.waitForFollowers();
  fake.logs.write('two', '2030-01-01T00:00:06Z');
  assert.deepEqual(await lines(res.body, 2), ['2030-01-01T00:00:05.25Z one', '2030-01-01T00:00:06Z two']);
  const bad = await request(`${fake.url}/api/v1/namespaces/default/pods/web-0/log?follow=true&sinceTime=yesterday`, { dispatcher, headers: auth });
  assert.equal(bad.statusCode, 400);
  await bad.body.dump();
});

test('blob bytes match blobSha256 and a sink hashes what it was sent', async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  const n = 3 * 1024 * 1024 + 7;
  const res = await request(`${fake.url}/blob?bytes=${n}&seed=s1`, { dispatcher, headers: auth });
  const hash = createHash('sha256');
  for await (const chunk of res.body) hash.update(chunk as Buffer);
  assert.equal(hash.digest('hex'), blobSha256(n, 's1'));
  assert.equal(fake.stats.blobBytesSent, n);
  assert.notEqual(blobSha256(n, 's1'), blobSha256(n, 's2'));
  const up = await request(`${fake.url}/sink`, { dispatcher, method: 'POST', headers: auth, body: blobStream(n, 'up') });
  assert.deepEqual(await up.body.json(), { bytes: n, sha256: blobSha256(n, 'up') });
});

test('204, 304 on a matching If-None-Match, created configmaps echoed with 201', async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  const nc = await request(`${fake.url}/nocontent`, { dispatcher, headers: auth });
  assert.equal(nc.statusCode, 204);
  await nc.body.dump();
  const e1 = await request(`${fake.url}/etag`, { dispatcher, headers: auth });
  assert.equal(e1.headers.etag, FAKE_ETAG);
  await e1.body.dump();
  const e2 = await request(`${fake.url}/etag`, { dispatcher, headers: { ...auth, 'if-none-match': FAKE_ETAG } });
  assert.equal(e2.statusCode, 304);
  await e2.body.dump();
  const cm = await request(`${fake.url}/api/v1/namespaces/default/configmaps`, {
    dispatcher,
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ metadata: { name: 'x' }, data: { a: 'b' } }),
  });
  assert.equal(cm.statusCode, 201);
  const body = (await cm.body.json()) as { metadata: { name: string; uid: string }; data: unknown };
  assert.equal(body.metadata.name, 'x');
  assert.deepEqual(body.data, { a: 'b' });
});

test("/headers sends repeated and many headers in order and echoes the request's raw headers; /trailers sends x-checksum", async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  const res = await request(`${fake.url}/headers`, { dispatcher, headers: [...Object.entries(auth).flat(), 'x-rep', '1', 'x-rep', '2'] });
  assert.deepEqual(res.headers.warning, FAKE_WARNINGS);
  assert.deepEqual(res.headers['set-cookie'], FAKE_COOKIES);
  for (let i = 0; i < FAKE_HEADER_COUNT; i++) assert.equal(res.headers[`x-fake-${i}`], `value-${i}`);
  const echo = (await res.body.json()) as { rawHeaders: string[] };
  const reps = echo.rawHeaders.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === 'x-rep' ? [echo.rawHeaders[i + 1]] : []));
  assert.deepEqual(reps, ['1', '2']);
  const tr = await request(`${fake.url}/trailers`, { dispatcher, headers: auth });
  assert.equal(await tr.body.text(), FAKE_TRAILER_CHUNKS.join(''));
  assert.equal(tr.trailers['x-checksum'], createHash('sha256').update(FAKE_TRAILER_CHUNKS.join('')).digest('hex'));
});

test('a client that gives up on /hang is recorded as aborted; /slow answers after its delay', async (t) => {
  const { fake, dispatcher, auth } = await start(t);
  const ac = new AbortController();
  const pending = request(`${fake.url}/hang`, { dispatcher, headers: auth, signal: ac.signal });
  await waitFor(() => fake.requests.some((r) => r.path === '/hang'), { what: '/hang to arrive' });
  ac.abort();
  await assert.rejects(pending);
  const aborted = await fake.aborted.wait((r) => r.path === '/hang');
  assert.equal(aborted.method, 'GET');
  const started = Date.now();
  const slow = await request(`${fake.url}/slow?ms=150`, { dispatcher, headers: auth });
  assert.equal(await slow.body.text(), 'slow\n');
  assert.ok(Date.now() - started >= 140);
});
