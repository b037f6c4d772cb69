import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import { startJsonRig, waitFor } from './json-protocol-harness.ts';

const PODS = '/api/v1/namespaces/default/pods';
const ok = { method: 'GET', path: PODS };

// [what, message as sent, expected id, expected code, expected message prefix]
const BAD: Array<[string, string, unknown, string, string]> = [
  ['text that is not JSON', '{"id": "a", method', null, 'PT_ERR_JSON_MALFORMED', 'message is not valid JSON'],
  ['a JSON array', '[1, 2]', null, 'PT_ERR_JSON_INVALID_REQUEST', 'message:'],
  ['a JSON string', '"GET /"', null, 'PT_ERR_JSON_INVALID_REQUEST', 'message:'],
  ['no id', JSON.stringify(ok), null, 'PT_ERR_JSON_INVALID_REQUEST', 'id:'],
  ['an object id', JSON.stringify({ ...ok, id: { a: 1 } }), null, 'PT_ERR_JSON_INVALID_REQUEST', 'id:'],
  ['an empty id', JSON.stringify({ ...ok, id: '' }), null, 'PT_ERR_JSON_INVALID_REQUEST', 'id:'],
  ['a fractional id', JSON.stringify({ ...ok, id: 1.5 }), null, 'PT_ERR_JSON_INVALID_REQUEST', 'id:'],
  ['a numeric method', JSON.stringify({ id: 'm', method: 5, path: PODS }), 'm', 'PT_ERR_JSON_INVALID_REQUEST', 'method:'],
  ['a method with a space', JSON.stringify({ id: 'm2', method: 'GET /', path: PODS }), 'm2', 'PT_ERR_JSON_INVALID_REQUEST', 'method:'],
  ['CONNECT', JSON.stringify({ id: 'm3', method: 'CONNECT', path: PODS }), 'm3', 'PT_ERR_JSON_INVALID_REQUEST', 'method:'],
  ['no path', JSON.stringify({ id: 'p', method: 'GET' }), 'p', 'PT_ERR_JSON_INVALID_REQUEST', 'path:'],
  ['a relative path', JSON.stringify({ id: 'p2', method: 'GET', path: 'api/v1/pods' }), 'p2', 'PT_ERR_JSON_INVALID_REQUEST', 'path:'],
  ['an absolute URL', JSON.stringify({ id: 'p3', method: 'GET', path: 'http://evil.example/' }), 'p3', 'PT_ERR_JSON_INVALID_REQUEST', 'path:'],
  ['a scheme-relative path', JSON.stringify({ id: 'p4', method: 'GET', path: '//evil.example/' }), 'p4', 'PT_ERR_JSON_INVALID_REQUEST', 'path:'],
  ['a path with a space', JSON.stringify({ id: 'p5', method: 'GET', path: '/api v1' }), 'p5', 'PT_ERR_JSON_INVALID_REQUEST', 'path:'],
  ['a query value that is a string', JSON.stringify({ ...ok, id: 'q', query: { watch: 'true' } }), 'q', 'PT_ERR_JSON_INVALID_REQUEST', 'query.watch:'],
  ['a query that is an array', JSON.stringify({ ...ok, id: 'q2', query: [['watch', 'true']] }), 'q2', 'PT_ERR_JSON_INVALID_REQUEST', 'query:'],
  ['a query array with a number', JSON.stringify({ ...ok, id: 'q3', query: { limit: [5] } }), 'q3', 'PT_ERR_JSON_INVALID_REQUEST', 'query.limit:'],
  ['headers that are a string', JSON.stringify({ ...ok, id: 'h', headers: 'Accept: x' }), 'h', 'PT_ERR_JSON_INVALID_REQUEST', 'headers:'],
  ['a header name with a space', JSON.stringify({ ...ok, id: 'h2', headers: { 'Bad Name': 'x' } }), 'h2', 'PT_ERR_JSON_INVALID_REQUEST', 'headers:'],
  [
    'a header value with CRLF',
    JSON.stringify({ ...ok, id: 'h3', headers: { 'x-a': 'a\r\nx-injected: 1' } }),
    'h3',
    'PT_ERR_JSON_INVALID_REQUEST',
    'headers.x-a:',
  ],
  ['a numeric header value', JSON.stringify({ ...ok, id: 'h4', headers: { 'x-n': 5 } }), 'h4', 'PT_ERR_JSON_INVALID_REQUEST', 'headers.x-n:'],
  ['a numeric body', JSON.stringify({ ...ok, id: 'b', body: 5 }), 'b', 'PT_ERR_JSON_INVALID_REQUEST', 'body:'],
  ['a body that is not base64', JSON.stringify({ ...ok, id: 'b2', body: '@@@=', bodyEncoding: 'base64' }), 'b2', 'PT_ERR_JSON_INVALID_REQUEST', 'body:'],
  ['an unknown bodyEncoding', JSON.stringify({ ...ok, id: 'b3', body: 'x', bodyEncoding: 'hex' }), 'b3', 'PT_ERR_JSON_INVALID_REQUEST', 'bodyEncoding:'],
  ['a string stream flag', JSON.stringify({ ...ok, id: 's', stream: 'yes' }), 's', 'PT_ERR_JSON_INVALID_REQUEST', 'stream:'],
  ['a string cancel flag', JSON.stringify({ id: 'c', cancel: 'yes' }), 'c', 'PT_ERR_JSON_INVALID_REQUEST', 'cancel:'],
  ['an unknown field holding an object', JSON.stringify({ ...ok, id: 'u', querry: { watch: ['true'] } }), 'u', 'PT_ERR_JSON_INVALID_REQUEST', 'querry:'],
  ['a cancel for an id not in flight', JSON.stringify({ id: 'nobody', cancel: true }), 'nobody', 'PT_ERR_JSON_UNKNOWN_ID', 'no request with id "nobody"'],
];

test('every kind of bad message gets an error for its id (or null) and the socket keeps serving valid requests after each', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  for (const [i, [what, text, id, code, prefix]] of BAD.entries()) {
    const before = runner.messages.length;
    runner.send(text);
    const good = await runner.request({ ...ok, id: `ok-${i}` });
    assert.equal(good.status, 200, `${what}: the following valid request is served`);
    const between = runner.messages.slice(before).filter((m) => m !== good);
    assert.equal(between.length, 1, `${what}: exactly one error message`);
    const err = between[0] as { id: unknown; error: { code: string; message: string } };
    assert.equal(err.id, id, what);
    assert.equal(err.error.code, code, what);
    assert.ok(err.error.message.startsWith(prefix), `${what}: "${err.error.message}" starts with "${prefix}"`);
  }
  assert.equal(rig.app.seen.length, BAD.length, 'no bad message reached the API server');
  assert.equal(runner.ws.readyState, WebSocket.OPEN);
});

test('unknown fields holding scalars are ignored, and ids 7 and "7" are different requests', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  const reply = await runner.request({ ...ok, id: 'x', type: 'request', timeout: 30, debug: false, note: null });
  assert.equal(reply.status, 200);
  runner.send({ ...ok, id: 7, query: { watch: ['true'] }, stream: true });
  runner.send({ ...ok, id: '7', query: { watch: ['true'] }, stream: true });
  await runner.next((m) => m.id === 7 && m.status === 200);
  await runner.next((m) => m.id === '7' && m.status === 200);
  assert.equal(runner.messages.filter((m) => 'error' in m).length, 0);
});

test('a second request with an in-flight id gets PT_ERR_JSON_DUPLICATE_ID and the first keeps streaming; after it ends the id is free again', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  runner.send({ ...ok, id: 'w', query: { watch: ['true'] }, stream: true });
  await waitFor(() => rig.app.watches.length === 1, 5_000, 'the watch');
  runner.send({ ...ok, id: 'w' });
  const dup = await runner.next((m) => m.id === 'w' && 'error' in m);
  assert.equal((dup.error as { code: string }).code, 'PT_ERR_JSON_DUPLICATE_ID');
  rig.app.watches[0]?.write('{"type":"ADDED","object":{}}\n');
  await runner.next((m) => m.id === 'w' && 'chunk' in m);
  rig.app.watches[0]?.end();
  await runner.next((m) => m.id === 'w' && m.done === true);
  runner.send({ ...ok, id: 'w' });
  const again = await runner.next((m) => m.id === 'w' && 'body' in m);
  assert.equal(again.status, 200);
  runner.send({ id: 'w', cancel: true });
  const late = await runner.next((m) => m.id === 'w' && 'error' in m, 5_000, 1);
  assert.equal((late.error as { code: string }).code, 'PT_ERR_JSON_UNKNOWN_ID', 'a cancel after the end is for an unknown id');
});

test('a binary frame gets PT_ERR_JSON_BINARY_FRAME and the socket stays usable', async (t) => {
  const rig = await startJsonRig(t);
  const runner = await rig.connect();
  runner.ws.send(Buffer.from(JSON.stringify({ ...ok, id: 'bin' })), { binary: true });
  const err = await runner.next((m) => 'error' in m);
  assert.deepEqual(err, { id: null, error: { code: 'PT_ERR_JSON_BINARY_FRAME', message: 'binary WebSocket frames are not accepted; send JSON text frames' } });
  assert.equal((await runner.request({ ...ok, id: 'after' })).status, 200);
});

test('requests beyond maxConcurrentRequests get PT_ERR_JSON_TOO_MANY_REQUESTS until one finishes', async (t) => {
  const rig = await startJsonRig(t, { maxConcurrentRequests: 2 });
  const runner = await rig.connect();
  runner.send({ ...ok, id: 'w1', query: { watch: ['true'] }, stream: true });
  runner.send({ ...ok, id: 'w2', query: { watch: ['true'] }, stream: true });
  runner.send({ ...ok, id: 'third' });
  const err = await runner.final('third');
  assert.equal((err.error as { code: string }).code, 'PT_ERR_JSON_TOO_MANY_REQUESTS');
  runner.send({ id: 'w1', cancel: true });
  await runner.final('w1');
  assert.equal((await runner.request({ ...ok, id: 'fourth' })).status, 200);
  const other = await rig.connect();
  assert.equal((await other.request({ ...ok, id: 'elsewhere' })).status, 200, 'the limit is per socket');
});

test('a message over maxMessageBytes closes that socket with 1009 and a reason; other sockets are unaffected', async (t) => {
  const rig = await startJsonRig(t, { maxMessageBytes: 1024 });
  const bystander = await rig.connect();
  bystander.send({ ...ok, id: 'bw', query: { watch: ['true'] }, stream: true });
  await waitFor(() => rig.app.watches.length === 1, 5_000, 'the bystander watch');
  const runner = await rig.connect();
  const closed = once(runner.ws, 'close') as Promise<[number, Buffer]>;
  runner.send({ ...ok, id: 'big', body: 'x'.repeat(2048) });
  const [code, reason] = await closed;
  assert.equal(code, 1009);
  assert.equal(reason.toString(), 'message exceeds the 1024-byte limit');
  rig.app.watches[0]?.write('{"type":"ADDED","object":{}}\n');
  await bystander.next((m) => m.id === 'bw' && 'chunk' in m);
  assert.equal((await bystander.request({ ...ok, id: 'still' })).status, 200);
});
