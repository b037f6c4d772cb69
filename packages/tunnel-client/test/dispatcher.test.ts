import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { type Duplex, duplexPair, Readable, Writable } from 'node:stream';
import { FormData, fetch, request, stream, upgrade } from 'undici';
import { connect, type Tunnel, TunnelDispatcher } from '../src/index.ts';
import { startFakeGatewayRunner, type FakeGatewayRunner } from './helpers/fake-gateway-runner.ts';
import { createTestApp, until, type TestApp } from './helpers/test-app.ts';
import type { TestContext } from 'node:test';

const TOKEN = 'runner-tkn-5f1e2d3c';

async function setup(t: TestContext): Promise<{ tunnel: Tunnel; app: TestApp; gw: FakeGatewayRunner }> {
  const app = createTestApp();
  const gw = await startFakeGatewayRunner(t, app.server, { token: TOKEN });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', ca: gw.caCert });
  t.after(() => tunnel.close());
  return { tunnel, app, gw };
}

test('fetch through the dispatcher reaches the app over a tunnel stream and parses JSON', async (t) => {
  const { tunnel, app } = await setup(t);
  const res = await fetch(`${tunnel.baseUrl}/version`, { dispatcher: tunnel.dispatcher });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { major: '1', minor: '99', gitVersion: 'v1.99.0-fake' });
  assert.equal(app.seen.at(-1)?.url, '/version');
});

test('concurrent requests each get their own stream and their own answer', async (t) => {
  const { tunnel } = await setup(t);
  const bodies = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const res = await fetch(`${tunnel.baseUrl}/echo`, { dispatcher: tunnel.dispatcher, method: 'POST', body: `req-${i}` });
      return res.text();
    }),
  );
  assert.deepEqual(
    bodies,
    Array.from({ length: 20 }, (_, i) => `req-${i}`),
  );
});

test('a large streamed upload and a large download arrive hash-identical', async (t) => {
  const { tunnel } = await setup(t);
  const chunk = Buffer.alloc(64 * 1024, 3);
  const expect = createHash('sha256');
  for (let i = 0; i < 64; i++) expect.update(chunk);
  const up = await request(`${tunnel.baseUrl}/echo`, {
    dispatcher: tunnel.dispatcher,
    method: 'PUT',
    body: Readable.from(
      (function* () {
        for (let i = 0; i < 64; i++) yield chunk;
      })(),
    ),
  });
  assert.equal(up.statusCode, 200);
  assert.equal(up.headers['x-sha256'], expect.digest('hex'));
  assert.equal(up.headers['x-bytes'], String(64 * chunk.length));
  await up.body.dump();

  const hash = createHash('sha256');
  let sha = '';
  await stream(`${tunnel.baseUrl}/big`, { dispatcher: tunnel.dispatcher, method: 'GET', opaque: null }, ({ headers }) => {
    sha = String(headers['x-sha256']);
    return new Writable({
      write(c: Buffer, _e, cb) {
        hash.update(c);
        cb();
      },
    });
  });
  assert.equal(hash.digest('hex'), sha);
});

test('trailers of a chunked response reach undici', async (t) => {
  const { tunnel } = await setup(t);
  const res = await request(`${tunnel.baseUrl}/trailers`, { dispatcher: tunnel.dispatcher });
  assert.equal(await res.body.text(), 'abc');
  assert.equal(res.trailers['x-checksum'], 'abc-sum');
});

test('a WATCH response is delivered event by event while the stream stays open, and an abort cuts it at the app', async (t) => {
  const { tunnel, app } = await setup(t);
  const ac = new AbortController();
  const res = await fetch(`${tunnel.baseUrl}/api/v1/namespaces/default/pods?watch=true`, { dispatcher: tunnel.dispatcher, signal: ac.signal });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  assert.match(String(first.value), /"name":"p0"/);
  await until(() => app.openWatches() === 1, 'the watch to be open');
  app.pushEvent('MODIFIED', 'p1');
  const second = await reader.read();
  assert.match(String(second.value), /"MODIFIED".*"p1"/);
  ac.abort();
  await until(() => app.aborted.length === 1, 'the app to see the watch aborted');
  assert.equal(app.openWatches(), 0);
});

test('undici upgrade hands over the tunnel stream as a raw socket, half-close included', async (t) => {
  const { tunnel } = await setup(t);
  const { socket, headers } = await upgrade(`${tunnel.baseUrl}/raw`, { dispatcher: tunnel.dispatcher, protocol: 'echo' });
  assert.equal(headers.upgrade, 'echo');
  let got = '';
  socket.setEncoding('utf8').on('data', (d: string) => {
    got += d;
  });
  socket.write('hello');
  await until(() => got === 'HELLO', 'the echo');
  socket.end();
  await once(socket, 'end');
  assert.equal(got, 'HELLOBYE');
});

test('the dispatcher refuses any origin other than its base URL and dials nothing', async (t) => {
  const { tunnel, app } = await setup(t);
  const before = app.seen.length;
  await assert.rejects(request('http://127.0.0.1:1/version', { dispatcher: tunnel.dispatcher }), { code: 'PT_ERR_CLIENT_ORIGIN' });
  await assert.rejects(
    fetch('https://example.com/', { dispatcher: tunnel.dispatcher }),
    (err: Error) => (err.cause as { code?: string }).code === 'PT_ERR_CLIENT_ORIGIN',
  );
  assert.equal(app.seen.length, before);
});

test('a completed request closes its stream with FIN both ways, never an RST the gateway would count as a failure', async (t) => {
  const { tunnel, gw } = await setup(t);
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${tunnel.baseUrl}/version`, { dispatcher: tunnel.dispatcher });
    await res.text();
  }
  const [session] = [...gw.sessions];
  assert.ok(session);
  await until(() => session.numStreams === 0, 'every stream to close');
  assert.equal(session.stats.streamsAccepted, 5);
  assert.equal(session.stats.resetsIn, 0);
});

test('a stream whose far end sends its FIN only after the answer was read still closes (its undici Client is let go)', async (t) => {
  const streams: Duplex[] = [];
  const finishFarSide: Array<() => void> = [];
  const dispatcher = new TunnelDispatcher('http://kubernetes.tunnel.invalid', async () => {
    const [runnerSide, farSide] = duplexPair();
    streams.push(runnerSide);
    farSide.once('data', () => {
      farSide.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      finishFarSide.push(() => farSide.end());
    });
    farSide.resume();
    return runnerSide;
  });
  t.after(() => dispatcher.close());
  for (let i = 0; i < 3; i++) {
    const res = await request('http://kubernetes.tunnel.invalid/version', { dispatcher });
    assert.equal(await res.body.text(), 'ok');
  }
  // undici is done with every stream: only now do the FINs come.
  for (const end of finishFarSide) end();
  await until(() => streams.every((s) => s.closed), 'every runner-side stream to close');
  assert.ok(
    streams.every((s) => s.errored === null),
    'ended cleanly, not destroyed with an error',
  );
});

test('tunnel.activeStreams counts the streams in flight and is back to 0 once they are over', async (t) => {
  const { tunnel } = await setup(t);
  assert.equal(tunnel.activeStreams, 0);
  const raw = await tunnel.openStream();
  assert.equal(tunnel.activeStreams, 1);
  raw.destroy();
  await until(() => tunnel.activeStreams === 0, 'the raw stream to be gone');
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      const res = await request(`${tunnel.baseUrl}/version`, { dispatcher: tunnel.dispatcher });
      await res.body.text();
    }),
  );
  await until(() => tunnel.activeStreams === 0, 'every request stream to close');
});

test('a stream whose answer is complete but whose far side never ends its half is reset after streamCloseTimeoutMs', async (t) => {
  // The far side answers in full (Content-Length) and then keeps its half of the stream open for ever.
  const far: { stream?: Duplex & { closeError?: Error } } = {};
  const app = createServer((req) => {
    far.stream = req.socket as Duplex & { closeError?: Error };
    far.stream.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok');
  });
  const gw = await startFakeGatewayRunner(t, app, { token: TOKEN });
  const tunnel = await connect({ gatewayUrl: gw.url, token: TOKEN, cluster: 'c1', ca: gw.caCert, mux: { streamCloseTimeoutMs: 100 } });
  t.after(() => tunnel.close());
  // A plain request (the tunnel's own exchange), and one whose FormData body takes an undici Client of its own.
  const form = new FormData();
  form.append('field', 'x');
  for (const body of [undefined, form]) {
    delete far.stream;
    const res = await request(`${tunnel.baseUrl}/hold-open`, { dispatcher: tunnel.dispatcher, method: 'POST', ...(body === undefined ? {} : { body }) });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'ok');
    await until(() => far.stream?.closed === true, 'the far side of the stream to be reset');
    const reset = (far as { stream?: { closeError?: Error } }).stream?.closeError as { code?: string } | undefined;
    assert.equal(reset?.code, 'PT_ERR_MUX_STREAM_RESET');
    await until(() => tunnel.activeStreams === 0, 'the runner to let the stream go');
  }
});

test("Node's built-in fetch takes the dispatcher too: JSON, an echoed body, a large download hash-identical, a refused origin with its code", async (t) => {
  const { tunnel } = await setup(t);
  // globalThis.fetch is the undici bundled with Node (7.x in Node 24), not the undici 8 this package uses.
  const builtin = globalThis.fetch as (url: string, init: Omit<RequestInit, 'dispatcher'> & { dispatcher: unknown }) => Promise<Response>;
  const version = await builtin(`${tunnel.baseUrl}/version`, { dispatcher: tunnel.dispatcher });
  assert.equal(version.status, 200);
  assert.equal(version.headers.get('content-type'), 'application/json');
  assert.deepEqual(await version.json(), { major: '1', minor: '99', gitVersion: 'v1.99.0-fake' });
  const echo = await builtin(`${tunnel.baseUrl}/echo`, { dispatcher: tunnel.dispatcher, method: 'POST', body: 'through the built-in fetch' });
  assert.equal(await echo.text(), 'through the built-in fetch');
  const big = await builtin(`${tunnel.baseUrl}/big`, { dispatcher: tunnel.dispatcher });
  const body = Buffer.from(await big.arrayBuffer());
  assert.ok(body.length > 1024 * 1024, `${body.length} bytes`);
  assert.equal(createHash('sha256').update(body).digest('hex'), big.headers.get('x-sha256'));
  await assert.rejects(
    builtin('http://elsewhere.invalid/version', { dispatcher: tunnel.dispatcher }),
    (err: Error & { cause?: { code?: string } }) => err.cause?.code === 'PT_ERR_CLIENT_ORIGIN',
  );
  // tunnel.fetch: the same, typed as the global fetch, a path taken relative to the base URL.
  const viaTunnel = await tunnel.fetch('/echo', { method: 'PUT', body: 'typed as the global fetch' });
  assert.equal(viaTunnel.status, 200);
  assert.equal(await viaTunnel.text(), 'typed as the global fetch');
});

test("Node's built-in fetch: a WATCH arrives event by event, and aborting it cuts it at the app", async (t) => {
  const { tunnel, app } = await setup(t);
  const builtin = globalThis.fetch as (url: string, init: Omit<RequestInit, 'dispatcher'> & { dispatcher: unknown }) => Promise<Response>;
  const ac = new AbortController();
  const res = await builtin(`${tunnel.baseUrl}/api/v1/namespaces/default/pods?watch=true`, { dispatcher: tunnel.dispatcher, signal: ac.signal });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  assert.match(String((await reader.read()).value), /"name":"p0"/);
  await until(() => app.openWatches() === 1, 'the watch to be open');
  app.pushEvent('MODIFIED', 'p1');
  assert.match(String((await reader.read()).value), /"MODIFIED".*"p1"/);
  ac.abort();
  await until(() => app.aborted.length === 1, 'the app to see the watch aborted');
  assert.equal(app.openWatches(), 0);
});
