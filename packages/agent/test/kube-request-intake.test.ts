// The agent reads each stream's request itself (no http.Server): what its
// head and body reader accept, refuse, and how a refusal looks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@pipeops/tunnel-testkit';
import { startHarnessOnFake } from './helpers/kube-harness.ts';

/** Status code and `Status` message of a raw answer. */
function statusOf(text: string): { code: number; message: string } {
  const code = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  return { code, message: body === '' ? '' : (JSON.parse(body) as { message: string }).message };
}

test('a request head with control characters, obs-fold, smuggling-shaped framing or an unknown coding is refused and never sent', async (t) => {
  const { fake, h } = await startHarnessOnFake(t);
  const refused: Array<[string, number, RegExp]> = [
    ['GET /version HTTP/1.1\r\nHost: x\r\nX-A: one\x00two\r\n\r\n', 400, /malformed HTTP request/],
    ['GET /version HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n', 400, /malformed HTTP request/],
    ['GET /version HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n', 400, /malformed HTTP request/],
    ['GET /version HTTP/2.0\r\nHost: x\r\n\r\n', 400, /malformed HTTP request/],
    [
      'POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      400,
      /both Transfer-Encoding and Content-Length/,
    ],
    ['POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 400, /more than one Content-Length/],
    ['POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello', 400, /malformed Content-Length/],
    ['POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501, /unsupported transfer coding/],
    ['POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: magic\r\n\r\nhello', 417, /unsupported expectation: magic/],
  ];
  for (const [text, code, message] of refused) {
    const got = statusOf(await h.raw(text));
    assert.equal(got.code, code, JSON.stringify(text));
    assert.match(got.message, message, JSON.stringify(text));
  }
  assert.equal(fake.requests.length, 0, 'nothing reached the API server');
});

test('a request head over the limit is answered 400 without reading on', async (t) => {
  const { fake, h } = await startHarnessOnFake(t);
  const got = statusOf(await h.raw(`GET /version HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`));
  assert.deepEqual(got, { code: 400, message: 'request head too large' });
  assert.equal(fake.requests.length, 0);
});

test('Expect: 100-continue is granted at once and the body follows to the API server', async (t) => {
  const { fake, h } = await startHarnessOnFake(t);
  const stream = h.open();
  stream.write('POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  let seen = '';
  for await (const chunk of stream) {
    seen += String(chunk);
    if (seen === 'HTTP/1.1 100 Continue\r\n\r\n') stream.end('hello');
  }
  assert.match(seen, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
  assert.match(seen, /"bytes":5/);
  assert.equal(fake.requests.at(-1)?.headers.expect, undefined, 'Expect is not sent on');
});

test('a malformed chunked body is answered 400 and the API server never gets a complete request', async (t) => {
  const { fake, h } = await startHarnessOnFake(t);
  const text = await h.raw('POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n');
  const got = statusOf(text);
  assert.equal(got.code, 400);
  assert.match(got.message, /malformed chunked body/);
  for (const r of fake.requests.filter((x) => x.path === '/sink')) await fake.aborted.wait((a) => a.seq === r.seq);
  // The audit record is written after the answer has left (afterOutput).
  await waitFor(() => h.logs.find((r) => r.event === 'audit'));
  assert.match(h.logs.text(), /"rule":"protocol"/);
});

test("a body cut short by the runner's FIN is answered 400, not sent on as complete", async (t) => {
  const { fake, h } = await startHarnessOnFake(t);
  const stream = h.open();
  stream.end('POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel');
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  const got = statusOf(text);
  assert.equal(got.code, 400);
  assert.match(got.message, /ended early/);
  for (const r of fake.requests.filter((x) => x.path === '/sink')) await fake.aborted.wait((a) => a.seq === r.seq);
});

test("bytes after a request's body reset the stream, and the request behind them never reaches the API server", async (t) => {
  const { fake, h } = await startHarnessOnFake(t);
  const text = await h
    .raw('POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloDELETE /api/v1/namespaces/default/pods/web-0 HTTP/1.1\r\nHost: x\r\n\r\n')
    .catch((err: unknown) => String(err));
  assert.ok(!/HTTP\/1\.1 \d{3}[\s\S]*HTTP\/1\.1 \d{3}/.test(text), 'at most one answer');
  assert.ok(h.logs.records.some((r) => r.event === 'pipelined_request_refused'));
  assert.equal(fake.requests.filter((r) => r.method === 'DELETE').length, 0);
});
