// The dispatcher's hand-written HTTP/1.1 exchange (src/internal/stream-exchange.ts,
// request-head.ts) against a far side scripted byte by byte: what it writes,
// each way an answer can be framed, interim heads, timeouts, aborts, and
// refusals of what undici's own Client refuses — with undici's error codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Duplex, duplexPair, Readable } from 'node:stream';
import { request } from 'undici';
import { TunnelDispatcher } from '../src/index.ts';
import { until } from './helpers/test-app.ts';

const ORIGIN = 'http://kubernetes.tunnel.invalid';

interface FarSide {
  /** Every byte the dispatcher wrote on the stream, latin1, once it ended its side (or the stream closed). */
  request: Promise<string>;
  far: Duplex;
  runner: Duplex;
}

/** A dispatcher whose every stream is one end of a pair; `serve` gets the other end at once. */
function scripted(t: { after(fn: () => unknown): void }, serve: (side: FarSide) => void): { dispatcher: TunnelDispatcher; sides: FarSide[] } {
  const sides: FarSide[] = [];
  const dispatcher = new TunnelDispatcher(ORIGIN, async () => {
    const [runner, far] = duplexPair();
    let bytes = '';
    far.setEncoding('latin1');
    far.on('data', (c: string) => {
      bytes += c;
    });
    const request = new Promise<string>((resolve) => {
      far.once('end', () => resolve(bytes));
      far.once('close', () => resolve(bytes));
    });
    const side = { request, far, runner };
    sides.push(side);
    serve(side);
    return runner;
  });
  t.after(() => dispatcher.destroy());
  return { dispatcher, sides };
}

const headOf = (req: string): string => req.slice(0, req.indexOf('\r\n\r\n'));

test('a GET goes out as one head with the FIN, Host from the origin, and an answer by Content-Length comes back whole', async (t) => {
  const { dispatcher, sides } = scripted(t, ({ far, request: req }) => {
    void req.then(() => far.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nX-Two: a\r\nX-Two: b\r\n\r\n{"ok":true}'));
  });
  const res = await request(`${ORIGIN}/api/v1/pods?limit=1`, { dispatcher, headers: { accept: 'application/json' } });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.headers['x-two'], ['a', 'b']);
  assert.deepEqual(await res.body.json(), { ok: true });
  const sent = await sides[0]!.request;
  assert.equal(sent, 'GET /api/v1/pods?limit=1 HTTP/1.1\r\naccept: application/json\r\nhost: kubernetes.tunnel.invalid\r\n\r\n');
  await until(() => sides[0]!.runner.closed, 'the stream to close');
});

test('a chunked answer is decoded and its trailers reach the caller; an interim 103 head goes before it', async (t) => {
  const { dispatcher } = scripted(t, ({ far, request: req }) => {
    void req.then(() =>
      far.end(
        'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Digest\r\n\r\n5\r\nfirst\r\n6\r\nsecond\r\n0\r\nX-Digest: abc\r\n\r\n',
      ),
    );
  });
  const infos: number[] = [];
  const res = await request(`${ORIGIN}/trailers`, { dispatcher, onInfo: (i: { statusCode: number }) => infos.push(i.statusCode) } as Parameters<
    typeof request
  >[1]);
  assert.equal(await res.body.text(), 'firstsecond');
  assert.deepEqual(res.trailers, { 'x-digest': 'abc' });
  assert.deepEqual(infos, [103]);
});

test('an answer without length or chunking runs to the far FIN; HEAD and 204 have no body whatever they announce', async (t) => {
  const { dispatcher } = scripted(t, ({ far, request: req }) => {
    void req.then((r) => {
      if (r.startsWith('GET /close')) far.end('HTTP/1.1 200 OK\r\n\r\nall of it, until the end');
      else if (r.startsWith('HEAD')) far.end('HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n');
      else far.end('HTTP/1.1 204 No Content\r\n\r\n');
    });
  });
  const close = await request(`${ORIGIN}/close`, { dispatcher });
  assert.equal(await close.body.text(), 'all of it, until the end');
  const head = await request(`${ORIGIN}/x`, { dispatcher, method: 'HEAD' });
  assert.equal(head.headers['content-length'], '999');
  assert.equal(await head.body.text(), '');
  const none = await request(`${ORIGIN}/x`, { dispatcher, method: 'DELETE' });
  assert.equal(none.statusCode, 204);
  assert.equal(await none.body.text(), '');
});

test('bodies go out framed: bytes with their length, a stream chunked, a stream with a given length as is, a bodyless POST with length 0', async (t) => {
  const { dispatcher, sides } = scripted(t, ({ far, request: req }) => {
    void req.then(() => far.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  });
  const send = async (body: unknown, headers: Record<string, string> = {}): Promise<string> => {
    const res = await request(`${ORIGIN}/sink`, { dispatcher, method: 'POST', body: body as string, headers });
    await res.body.dump();
    return (await sides.at(-1)!.request).slice(0);
  };
  const bytes = await send('{"a":1}', { 'content-type': 'application/json' });
  assert.match(headOf(bytes), /\r\ncontent-length: 7$/);
  assert.ok(bytes.endsWith('\r\n\r\n{"a":1}'));
  const chunked = await send(Readable.from([Buffer.from('ab'), Buffer.from('cde')]));
  assert.match(headOf(chunked), /\r\ntransfer-encoding: chunked$/);
  assert.ok(chunked.endsWith('\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n'));
  const sized = await send(Readable.from([Buffer.from('ab'), Buffer.from('cde')]), { 'content-length': '5' });
  assert.match(headOf(sized), /\r\ncontent-length: 5$/);
  assert.ok(sized.endsWith('\r\n\r\nabcde'));
  const empty = await send(null);
  assert.match(headOf(empty), /\r\ncontent-length: 0$/);
});

test("what undici's Client refuses is refused before a byte is sent, with undici's codes", async (t) => {
  const { dispatcher, sides } = scripted(t, ({ far }) => far.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  const refused = async (opts: Parameters<typeof request>[1], code: string): Promise<void> => {
    await assert.rejects(request(`${ORIGIN}/x`, { dispatcher, ...opts }), (err: Error & { code?: string }) => err.code === code);
  };
  await refused({ headers: { 'x-evil': 'a\r\nInjected: yes' } }, 'UND_ERR_INVALID_ARG');
  await refused({ headers: { 'bad name': 'x' } }, 'UND_ERR_INVALID_ARG');
  await refused({ headers: { 'transfer-encoding': 'chunked' } }, 'UND_ERR_INVALID_ARG');
  await refused({ headers: { expect: '100-continue' } }, 'UND_ERR_NOT_SUPPORTED');
  await refused({ method: 'POST', body: 'abc', headers: { 'content-length': '5' } }, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  assert.equal(sides.length, 0, 'no stream was opened');
  await refused({ method: 'POST', body: Readable.from([Buffer.from('abc')]), headers: { 'content-length': '5' } }, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
});

test('the query option is serialised as undici does', async (t) => {
  const { dispatcher, sides } = scripted(t, ({ far, request: req }) => {
    void req.then(() => far.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  });
  const res = await request(`${ORIGIN}/api/v1/pods`, { dispatcher, query: { labelSelector: 'app=web,tier in (a b)', limit: 5 } });
  await res.body.dump();
  assert.ok((await sides[0]!.request).startsWith('GET /api/v1/pods?labelSelector=app%3Dweb%2Ctier%20in%20(a%20b)&limit=5 HTTP/1.1\r\n'));
});

test('an answer cut by the far FIN mid-body fails with UND_ERR_SOCKET, what a resume looks for', async (t) => {
  const { dispatcher } = scripted(t, ({ far, request: req }) => {
    void req.then(() => far.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b'));
  });
  const cut = await request(`${ORIGIN}/cut`, { dispatcher });
  await assert.rejects(cut.body.text(), (err: Error & { code?: string }) => err.code === 'UND_ERR_SOCKET');
});

test('headers and body timeouts end the exchange with undici codes and reset the stream', async (t) => {
  const { dispatcher, sides } = scripted(t, ({ far, request: req }) => {
    void req.then((r) => {
      if (r.includes('/slow-body')) far.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
      // /slow-head: no answer at all
    });
  });
  await assert.rejects(
    request(`${ORIGIN}/slow-head`, { dispatcher, headersTimeout: 50 }),
    (err: Error & { code?: string }) => err.code === 'UND_ERR_HEADERS_TIMEOUT',
  );
  const res = await request(`${ORIGIN}/slow-body`, { dispatcher, bodyTimeout: 50 });
  await assert.rejects(res.body.text(), (err: Error & { code?: string }) => err.code === 'UND_ERR_BODY_TIMEOUT');
  await until(() => sides.every((s) => s.runner.destroyed), 'both streams to be reset');
});

test('an abort mid-answer resets the stream and the caller sees the abort', async (t) => {
  const { dispatcher, sides } = scripted(t, ({ far, request: req }) => {
    void req.then(() => far.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nevt1\r\n'));
  });
  const controller = new AbortController();
  const res = await request(`${ORIGIN}/watch`, { dispatcher, signal: controller.signal });
  const first = await new Promise<Buffer>((resolve) => res.body.once('data', resolve));
  assert.equal(first.toString(), 'evt1');
  controller.abort();
  await assert.rejects(res.body.text(), { name: 'AbortError' });
  assert.ok(sides[0]!.runner.destroyed, 'the stream is reset, not ended');
});

test('an answer before the upload is through stops the upload and resets the stream; the caller still gets the answer', async (t) => {
  const { dispatcher, sides } = scripted(t, ({ far }) => {
    far.once('data', () => far.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied'));
  });
  let pulled = 0;
  // One piece per turn of the event loop (the in-memory pair never pushes back).
  const endless = new Readable({
    read() {
      pulled++;
      setImmediate(() => this.push(Buffer.alloc(16 * 1024, 1)));
    },
  });
  const res = await request(`${ORIGIN}/api/v1/secrets`, { dispatcher, method: 'POST', body: endless });
  assert.equal(res.statusCode, 403);
  assert.equal(await res.body.text(), 'denied');
  await until(() => endless.destroyed && sides[0]!.runner.destroyed, 'the upload and the stream to stop');
  const stopped = pulled;
  await new Promise((r) => setImmediate(r));
  assert.equal(pulled, stopped, 'nothing more is read from the upload');
});

test('a malformed answer head fails the request with a parser error and resets the stream', async (t) => {
  const { dispatcher, sides } = scripted(t, ({ far, request: req }) => {
    void req.then(() => far.end('HTTP/1.1 200 OK\r\nBad Header Name: x\r\n\r\n'));
  });
  await assert.rejects(request(`${ORIGIN}/x`, { dispatcher }), (err: Error & { code?: string }) => err.code === 'HPE_INVALID_RESPONSE');
  await until(() => sides[0]!.runner.destroyed, 'the stream to be reset');
});
