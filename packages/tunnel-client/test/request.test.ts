import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientError } from '../src/index.ts';
import { connectToTestApp } from './helpers/connected-app.ts';
import { until } from './helpers/test-app.ts';
import type { TestContext } from 'node:test';

const TOKEN = 'runner-tkn-0a9b8c7d';

const setup = (t: TestContext) => connectToTestApp(t, TOKEN);

test('request() returns id, status, headers and a JSON body parsed, in the VM agent message shape', async (t) => {
  const { tunnel, app } = await setup(t);
  const r = await tunnel.request({
    id: 'req-1',
    method: 'GET',
    path: '/api/v1/namespaces/default/pods',
    query: { labelSelector: ['app=web'], limit: ['5'] },
    headers: { Accept: 'application/json' },
  });
  assert.equal(r.id, 'req-1');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(r.body, { kind: 'PodList', items: [{ metadata: { name: 'p0' } }] });
  assert.equal(app.seen.at(-1)?.url, '/api/v1/namespaces/default/pods?labelSelector=app%3Dweb&limit=5');
});

test('request() sends an object body as JSON and returns non-JSON bodies as text', async (t) => {
  const { tunnel, app } = await setup(t);
  const r = await tunnel.request({ method: 'POST', path: '/echo', body: { kind: 'ConfigMap', data: { a: '1' } } });
  assert.deepEqual(r.body, { kind: 'ConfigMap', data: { a: '1' } });
  assert.equal(app.seen.at(-1)?.headers['content-type'], 'application/json');
  const text = await tunnel.request({ method: 'PUT', path: '/echo', headers: { 'content-type': 'text/plain' }, body: 'plain words' });
  assert.equal(text.body, 'plain words');
  assert.equal(typeof text.id, 'string');
});

test('request() returns an error status with its Status body instead of throwing', async (t) => {
  const { tunnel } = await setup(t);
  const r = await tunnel.request({ method: 'GET', path: '/api/v1/nope' });
  assert.equal(r.status, 404);
  assert.equal((r.body as { reason: string }).reason, 'NotFound');
});

test('request({ stream: true }) yields WATCH events as objects as they arrive and cancels upstream when the loop breaks', async (t) => {
  const { tunnel, app } = await setup(t);
  const res = await tunnel.request({ id: 'w1', method: 'GET', path: '/api/v1/namespaces/default/pods', query: { watch: ['true'] }, stream: true });
  assert.equal(res.id, 'w1');
  assert.equal(res.status, 200);
  const got: unknown[] = [];
  for await (const chunk of res) {
    got.push(chunk);
    if (got.length === 1) {
      await until(() => app.openWatches() === 1, 'the watch to be open');
      app.pushEvent('DELETED', 'p9');
    }
    if (got.length === 2) break;
  }
  assert.deepEqual(
    got.map((c) => (c as { type: string }).type),
    ['ADDED', 'DELETED'],
  );
  await until(() => app.aborted.length === 1, 'the app to see the watch cancelled');
});

test('request({ stream: true }) yields log lines as strings', async (t) => {
  const { tunnel } = await setup(t);
  const res = await tunnel.request({ method: 'GET', path: '/api/v1/namespaces/default/pods/p0/log', stream: true });
  const lines: unknown[] = [];
  for await (const line of res) lines.push(line);
  assert.deepEqual(lines, ['line 1', 'line 2', 'line 3']);
});

test('request({ stream: true }) on an error status rejects with PT_ERR_CLIENT_HTTP carrying the Status body', async (t) => {
  const { tunnel } = await setup(t);
  await assert.rejects(tunnel.request({ method: 'GET', path: '/api/v1/missing', stream: true }), (err: ClientError) => {
    assert.equal(err.code, 'PT_ERR_CLIENT_HTTP');
    assert.equal(err.status, 404);
    assert.equal((err.body as { reason: string }).reason, 'NotFound');
    return true;
  });
});

test('watch() iterates events from a resourceVersion and stops on abort', async (t) => {
  const { tunnel, app } = await setup(t);
  const ac = new AbortController();
  const events: Array<{ type: string; name: unknown }> = [];
  const done = (async () => {
    for await (const ev of tunnel.watch<{ metadata: { name: string; resourceVersion?: string } }>('/api/v1/namespaces/default/pods', {
      resourceVersion: '42',
      signal: ac.signal,
    })) {
      events.push({ type: ev.type, name: ev.object.metadata.name });
      if (events.length === 1) {
        assert.equal(ev.object.metadata.resourceVersion, '42');
        await until(() => app.openWatches() === 1, 'the watch to be open');
        app.pushEvent('MODIFIED', 'p0');
      }
      if (events.length === 2) ac.abort();
    }
  })();
  await assert.rejects(done, { name: 'AbortError' });
  assert.deepEqual(events, [
    { type: 'ADDED', name: 'p0' },
    { type: 'MODIFIED', name: 'p0' },
  ]);
  assert.match(app.seen.at(-1)?.url ?? '', /watch=true&resourceVersion=42/);
  await until(() => app.aborted.length === 1, 'the app to see the watch aborted');
});
