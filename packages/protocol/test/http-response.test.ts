import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { parseRequestHead, parseResponseHead, RawResponse, readHead } from '../src/index.ts';

type Answer = (res: RawResponse, socket: net.Socket) => void;

/** A raw TCP server on 127.0.0.1 that reads one request head and answers it with a RawResponse built by `answer`. */
async function rawServer(t: TestContext, answer: Answer): Promise<number> {
  const server = net.createServer((socket) => {
    void readHead(socket, 8192).then(({ head }) => {
      const req = parseRequestHead(head);
      assert.ok(req !== undefined);
      answer(new RawResponse(socket, { method: req.method, http10: req.requestLine.endsWith('1.0') }), socket);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return (server.address() as AddressInfo).port;
}

/** One request with Node's own client: status, headers, body and trailers as Node's parser read them. */
async function fetchRaw(
  port: number,
  method = 'GET',
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; trailers: NodeJS.Dict<string> }> {
  const req = http.request({ host: '127.0.0.1', port, method, path: '/x', agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  let body = '';
  res.setEncoding('latin1');
  for await (const c of res) body += c as string;
  return { status: res.statusCode ?? 0, headers: res.headers, body, trailers: res.trailers };
}

test("an answer without a length is chunked with its trailers, and Node's client reads it whole", async (t) => {
  const port = await rawServer(t, (res) => {
    res.writeHead(200, undefined, ['Content-Type', 'text/plain', 'Trailer', 'X-Sum']);
    res.write(Buffer.from('small '));
    res.write(Buffer.alloc(40_000, 'b'));
    res.end(['X-Sum', '42']);
  });
  const got = await fetchRaw(port);
  assert.equal(got.status, 200);
  assert.equal(got.headers['transfer-encoding'], 'chunked');
  assert.equal(got.headers.connection, 'close');
  assert.equal(got.body, `small ${'b'.repeat(40_000)}`);
  assert.deepEqual(got.trailers, { 'x-sum': '42' });
});

test('an answer with a length is sent as it is, and a reason phrase is kept or defaulted', async (t) => {
  const port = await rawServer(t, (res) => {
    res.writeHead(201, 'Made', ['Content-Length', '5']);
    res.write(Buffer.from('hello'));
    res.end(['X-Ignored', 'no trailers without chunked']);
  });
  const got = await fetchRaw(port);
  assert.equal(got.status, 201);
  assert.equal(got.headers['content-length'], '5');
  assert.equal(got.headers['transfer-encoding'], undefined);
  assert.equal(got.body, 'hello');
  assert.deepEqual(got.trailers, {});
});

test('HEAD, 204 and 304 answers carry no body and no chunked coding', async (t) => {
  for (const [method, status] of [
    ['HEAD', 200],
    ['GET', 204],
    ['GET', 304],
  ] as const) {
    const port = await rawServer(t, (res) => {
      res.writeHead(status, undefined, method === 'HEAD' ? ['Content-Length', '99'] : []);
      res.write(Buffer.from('never sent'));
      res.end();
    });
    const got = await fetchRaw(port, method);
    assert.equal(got.status, status);
    assert.equal(got.body, '');
    assert.equal(got.headers['transfer-encoding'], undefined, `${method} ${status}`);
    if (method === 'HEAD') assert.equal(got.headers['content-length'], '99');
  }
});

test('an HTTP/1.0 request gets a body delimited by the end of the stream', async (t) => {
  const port = await rawServer(t, (res) => {
    res.writeHead(200, undefined, []);
    res.write(Buffer.from('one '));
    res.end();
  });
  const sock = net.connect(port, '127.0.0.1');
  sock.end('GET /x HTTP/1.0\r\n\r\n');
  let text = '';
  for await (const c of sock) text += String(c);
  assert.equal(text, 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\none ');
});

test('a held head and a small body leave as one write', async (t) => {
  let writes = 0;
  const port = await rawServer(t, (res, socket) => {
    const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
    socket.write = ((chunk: Buffer) => {
      writes += 1;
      return write(chunk);
    }) as typeof socket.write;
    res.writeHead(200, undefined, ['Content-Length', '2']);
    res.write(Buffer.from('ok'));
    res.end();
  });
  const got = await fetchRaw(port);
  assert.equal(got.body, 'ok');
  assert.equal(writes, 1);
});

test('a response head is parsed strictly: status, reason (possibly empty) and header lines in order', () => {
  assert.deepEqual(parseResponseHead('HTTP/1.1 200 OK\r\nA: 1\r\na: 2\r\nX-Empty:\r\n'.replace(/\r\n$/, '')), {
    status: 200,
    reason: 'OK',
    headers: ['A', '1', 'a', '2', 'X-Empty', ''],
  });
  assert.deepEqual(parseResponseHead('HTTP/1.1 204'), { status: 204, reason: '', headers: [] });
  assert.equal(parseResponseHead('HTTP/2 200 OK'), undefined);
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\n folded: no'), undefined);
  assert.equal(parseResponseHead('HTTP/1.1 2000 OK'), undefined);
});

test('request and response heads refuse a control character in a target or a field value, and keep HTAB and bytes from 0x80', () => {
  assert.equal(parseRequestHead('GET /a\x01b HTTP/1.1\r\nHost: x'), undefined);
  assert.equal(parseRequestHead('GET /a\x7fb HTTP/1.1\r\nHost: x'), undefined);
  assert.equal(parseRequestHead('GET / HTTP/1.1\r\nX-A: one\x00two'), undefined);
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nX-A: one\x1btwo'), undefined);
  assert.deepEqual(parseRequestHead('GET /caf\xe9 HTTP/1.1\r\nX-A: a\tb\xff')?.headers, ['X-A', 'a\tb\xff']);
  assert.equal(parseRequestHead('GET /caf\xe9 HTTP/1.1')?.target, '/caf\xe9');
});
