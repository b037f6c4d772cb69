// The API server speaks HTTP/2 (kube-apiserver offers h2 by ALPN). Plain
// requests and upgrades stay HTTP/1.1 — a 101 has no h2 form — while WATCH
// streams share h2 connections, so 10,000 idle watches do not cost 10,000
// TLS connections. Regression, first half: undici 8 once negotiated h2 for
// every request and the relay, written for HTTP/1.1 header lists, failed them
// all; only the real-cluster matrix caught it.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { constants as h2, createSecureServer } from 'node:http2';
import type { Http2ServerResponse } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { kubeconfigFor, testCertificates, waitFor } from '@pipeops/tunnel-testkit';
import { headerList } from '@pipeops/tunnel-protocol';
import { upstreamUse } from '../src/kube/upstream-dispatch.ts';
import { kubeVerb } from '../src/kube/verb.ts';
import type { KubeHarness } from './helpers/kube-harness.ts';
import { metricValue, readAll, startKubeHarness, tempDir, writeIn } from './helpers/kube-harness.ts';

const WATCH = '/api/v1/namespaces/default/configmaps?watch=true';
const TOKEN = 'agent-token-h2';

/** What the stand-in uses of a response: common to node:http and the compatibility API of node:http2. */
interface Res {
  sendDate: boolean;
  writeHead(status: number, headers: Record<string, string>): unknown;
  flushHeaders(): void;
  setHeader(name: string, value: string | string[]): unknown;
  write(chunk: string): boolean;
  addTrailers(headers: Record<string, string>): void;
  end(body?: string): unknown;
  destroy(): unknown;
  on(event: 'close', fn: () => void): unknown;
}

/** A watch the stand-in API server holds open. */
interface ServerWatch {
  httpVersion: string;
  res: Res;
  closed: boolean;
}

/** A stand-in API server on 127.0.0.1: h2 + HTTP/1.1 like kube-apiserver, or HTTP/1.1 only. */
interface ApiServer {
  url: string;
  /** ALPN protocol of every TLS connection accepted (`false` when none was negotiated). */
  connections: Array<string | false | null>;
  /** `[path, httpVersion, authorization]` of every request and upgrade. */
  requests: Array<{ path: string; httpVersion: string; authorization: string | undefined; upgrade: boolean }>;
  watches: ServerWatch[];
  /** Emits `watch` (ServerWatch) and `watch-closed` (ServerWatch). */
  events: EventEmitter;
}

async function startApiServer(t: TestContext, o: { h2: boolean }): Promise<ApiServer> {
  const certs = testCertificates('apiserver');
  const api: Omit<ApiServer, 'url'> = { connections: [], requests: [], watches: [], events: new EventEmitter() };
  const handler = (req: IncomingMessage, res: Res): void => {
    api.requests.push({ path: req.url ?? '', httpVersion: req.httpVersion, authorization: req.headers.authorization, upgrade: false });
    res.sendDate = false;
    if (req.url === WATCH) {
      res.writeHead(200, { 'content-type': 'application/json', 'x-watch': 'yes' });
      res.flushHeaders();
      const w: ServerWatch = { httpVersion: req.httpVersion, res, closed: false };
      api.watches.push(w);
      res.on('close', () => {
        w.closed = true;
        api.events.emit('watch-closed', w);
      });
      api.events.emit('watch', w);
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.setHeader('warning', ['299 - "first"', '299 - "second"']);
    res.end(JSON.stringify({ gitVersion: 'v1.33.0-h2-test' }));
  };
  const server = o.h2
    ? // Offers h2 first, accepts HTTP/1.1 too — like kube-apiserver.
      createSecureServer({ cert: certs.cert, key: certs.key, allowHTTP1: true }, handler as never)
    : createHttpsServer({ cert: certs.cert, key: certs.key, ALPNProtocols: ['http/1.1'] }, handler as never);
  server.on('secureConnection', (s: TLSSocket) => api.connections.push(s.alpnProtocol));
  // A SPDY-style upgrade (as exec asks for): 101, then echo.
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    api.requests.push({ path: req.url ?? '', httpVersion: req.httpVersion, authorization: req.headers.authorization, upgrade: true });
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n');
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const w of api.watches) if (!w.closed) w.res.destroy();
    server.close();
  });
  return { ...api, url: `https://127.0.0.1:${String((server.address() as AddressInfo).port)}` };
}

async function harnessFor(t: TestContext, api: ApiServer): Promise<KubeHarness> {
  const kubeconfig = writeIn(tempDir(t), 'kubeconfig', kubeconfigFor({ server: api.url, token: TOKEN, caData: testCertificates('apiserver').caCert }));
  return startKubeHarness(t, { kubeconfig, inCluster: false, start: false });
}

/** Opens `n` WATCH requests from the runner side; resolves once every head arrived and the server holds them all. */
async function openWatches(h: KubeHarness, api: ApiServer, n: number): Promise<Array<{ res: IncomingMessage; stream: Duplex }>> {
  const opened = await Promise.all(Array.from({ length: n }, () => h.request({ path: WATCH, headers: { host: 'gateway.example' } })));
  for (const { res } of opened) assert.equal(res.statusCode, 200);
  await waitFor(() => api.watches.length >= n, { what: `${String(n)} watches upstream` });
  return opened;
}

/** Everything read from a stream so far, and a wait for what it should come to (chunks may arrive several in one tick). */
interface Collected {
  readonly text: string;
  until(pred: (text: string) => boolean): Promise<void>;
}

function collect(s: Duplex): Collected {
  let text = '';
  let waiter: { pred: (text: string) => boolean; resolve: () => void } | undefined;
  s.on('data', (c: Buffer) => {
    text += c.toString('latin1');
    if (waiter?.pred(text) === true) {
      waiter.resolve();
      waiter = undefined;
    }
  });
  return {
    get text() {
      return text;
    },
    until: (pred) =>
      new Promise<void>((resolve) => {
        if (pred(text)) resolve();
        else waiter = { pred, resolve };
      }),
  };
}

/** Decodes a chunked body that must be complete (ends with the last chunk and trailer section). */
function dechunk(text: string): { body: string; trailers: string } {
  let body = '';
  let at = 0;
  for (;;) {
    const eol = text.indexOf('\r\n', at);
    assert.ok(eol !== -1, `chunk size line at ${String(at)}`);
    const size = Number.parseInt(text.slice(at, eol), 16);
    at = eol + 2;
    if (size === 0) {
      assert.ok(text.endsWith('\r\n\r\n') || text.slice(at) === '\r\n', 'ends with the trailer section');
      return { body, trailers: text.slice(at, text.length - 2) };
    }
    body += text.slice(at, at + size);
    assert.equal(text.slice(at + size, at + size + 2), '\r\n');
    at += size + 2;
  }
}

const event = (name: string): string => `${JSON.stringify({ type: 'ADDED', object: { metadata: { name } } })}\n`;

test('plain requests and upgrades stay HTTP/1.1 while a WATCH goes over h2, relayed byte for byte', async (t) => {
  const api = await startApiServer(t, { h2: true });
  const h = await harnessFor(t, api);

  const { res } = await h.request({ path: '/version', requestId: 'h2-1', headers: { host: 'gateway.example' } });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.headers.warning, '299 - "first", 299 - "second"');
  assert.equal(JSON.parse((await readAll(res)).toString()).gitVersion, 'v1.33.0-h2-test');

  const upgrade = h.open();
  upgrade.write(
    'POST /api/v1/namespaces/default/pods/web-0/exec?command=sh HTTP/1.1\r\nHost: gateway.example\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n',
  );
  const up = collect(upgrade);
  await up.until((s) => s.includes('\r\n\r\n'));
  assert.match(up.text, /^HTTP\/1\.1 101 /);
  upgrade.write('echo-me');
  await up.until((s) => s.endsWith('echo-me'));
  upgrade.destroy();

  const watch = h.open();
  watch.write(`GET ${WATCH} HTTP/1.1\r\nHost: gateway.example\r\nAuthorization: Bearer runner-secret\r\n\r\n`);
  const got = collect(watch);
  const ended = once(watch, 'end');
  await got.until((s) => s.includes('\r\n\r\n'));
  const [w] = api.watches;
  assert.ok(w !== undefined);
  // Every event reaches the runner while the response is still open.
  for (const name of ['a', 'b', 'c']) {
    w.res.write(event(name));
    await got.until((s) => s.includes(`"name":"${name}"`));
  }
  w.res.addTrailers({ 'x-watch-end': 'done' });
  w.res.end();
  await ended;
  watch.end();

  const split = got.text.indexOf('\r\n\r\n') + 4;
  // h2 header names arrive lower-case; no Content-Length, so Node chunks the body.
  assert.equal(
    got.text.slice(0, split),
    'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-watch: yes\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n',
  );
  assert.deepEqual(dechunk(got.text.slice(split)), { body: event('a') + event('b') + event('c'), trailers: 'x-watch-end: done\r\n' });

  assert.deepEqual(
    api.requests.map((r) => [r.path.split('?')[0], r.httpVersion, r.upgrade]),
    [
      ['/version', '1.1', false],
      ['/api/v1/namespaces/default/pods/web-0/exec', '1.1', true],
      ['/api/v1/namespaces/default/configmaps', '2.0', false],
    ],
  );
  assert.ok(
    api.requests.every((r) => r.authorization === `Bearer ${TOKEN}`),
    'the agent token, never the runner one',
  );
  // The upgrade may take the plain request's idle keep-alive connection or a new one; neither is ever h2.
  assert.deepEqual([...new Set(api.connections)].toSorted(), ['h2', 'http/1.1']);
  await waitFor(async () => (await metricValue(h.registry, 'pipeops_tunnel_k8s_requests_total', { verb: 'watch', code: '2xx' })) === 1);
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_k8s_watches_active'), 0);
});

test('the API-server health checks go over h2 when the server offers it, and HTTP/1.1 when it does not', async (t) => {
  for (const offersH2 of [true, false]) {
    const api = await startApiServer(t, { h2: offersH2 });
    const kubeconfig = writeIn(tempDir(t), 'kubeconfig', kubeconfigFor({ server: api.url, token: TOKEN, caData: testCertificates('apiserver').caCert }));
    const h = await startKubeHarness(t, { kubeconfig, inCluster: false });
    await waitFor(() => api.requests.some((r) => r.path === '/version'), { what: 'the first health check' });
    const version = offersH2 ? '2.0' : '1.1';
    assert.deepEqual(
      api.requests.map((r) => [r.path, r.httpVersion]),
      [
        ['/readyz', version],
        ['/version', version],
      ],
    );
    // With h2 no HTTP/1.1 connection was needed: an idle agent never loads undici's HTTP/1.1 parser.
    if (offersH2) assert.deepEqual(api.connections, ['h2']);
    else assert.ok(api.connections.length > 0 && api.connections.every((p) => p === 'http/1.1'), api.connections.join());
    await h.kube.close();
  }
});

test('200 concurrent WATCH requests share at most two h2 connections and each gets its own events', async (t) => {
  const api = await startApiServer(t, { h2: true });
  const h = await harnessFor(t, api);
  const watches = await openWatches(h, api, 200);
  assert.equal(await metricValue(h.registry, 'pipeops_tunnel_k8s_watches_active'), 200);
  // 100 streams per connection (below the server's own limit): two connections, no more.
  assert.ok(api.connections.length <= 2, `${String(api.connections.length)} TLS connections`);
  assert.ok(api.connections.every((p) => p === 'h2'));
  assert.ok(api.watches.every((w) => w.httpVersion === '2.0'));
  // Each server-side watch writes its index; every runner receives exactly one distinct line.
  const lines = watches.map(({ res }) => once(res, 'data').then(([c]) => (c as Buffer).toString()));
  for (const [i, w] of api.watches.entries()) w.res.write(event(`w${String(i)}`));
  const received = (await Promise.all(lines)).toSorted();
  assert.deepEqual(received, api.watches.map((_, i) => event(`w${String(i)}`)).toSorted());
});

test('a runner cancelling one WATCH resets only its h2 stream; the others on the connection keep flowing', async (t) => {
  const api = await startApiServer(t, { h2: true });
  const h = await harnessFor(t, api);
  const watches = await openWatches(h, api, 3);
  assert.deepEqual(api.connections, ['h2']);
  const [gone, ...kept] = watches;
  assert.ok(gone !== undefined);
  // Which server-side watch is the cancelled one is only known once it closes.
  const closed = once(api.events, 'watch-closed') as Promise<[ServerWatch]>;
  gone.stream.destroy();
  const [cancelled] = await closed;
  await waitFor(async () => (await metricValue(h.registry, 'pipeops_tunnel_k8s_watches_active')) === 2);
  const open = api.watches.filter((w) => w !== cancelled);
  assert.equal(open.length, 2);
  assert.ok(open.every((w) => !w.closed));
  const lines = kept.map(({ res }) => once(res, 'data').then(([c]) => (c as Buffer).toString()));
  for (const w of open) w.res.write(event('still-here'));
  assert.deepEqual(await Promise.all(lines), [event('still-here'), event('still-here')]);
  assert.deepEqual(api.connections, ['h2'], 'the connection survived the reset');
});

test('an API server without h2 gets WATCH requests over HTTP/1.1, one connection each', async (t) => {
  const api = await startApiServer(t, { h2: false });
  const h = await harnessFor(t, api);
  const watches = await openWatches(h, api, 3);
  assert.equal(api.connections.length, 3);
  assert.ok(api.watches.every((w) => w.httpVersion === '1.1'));
  const lines = watches.map(({ res }) => once(res, 'data').then(([c]) => (c as Buffer).toString()));
  for (const w of api.watches) w.res.write(event('h1'));
  assert.deepEqual(await Promise.all(lines), [event('h1'), event('h1'), event('h1')]);
  for (const w of api.watches) w.res.end();
  await Promise.all(watches.map(({ res }) => once(res, 'end')));
  await waitFor(async () => (await metricValue(h.registry, 'pipeops_tunnel_k8s_requests_total', { verb: 'watch', code: '2xx' })) === 3);
});

test('an API server resetting a WATCH stream mid-body resets the runner stream after the head', async (t) => {
  const api = await startApiServer(t, { h2: true });
  const h = await harnessFor(t, api);
  const [watch] = await openWatches(h, api, 1);
  assert.ok(watch !== undefined);
  const { res, stream } = watch;
  res.on('error', () => {});
  const first = once(res, 'data');
  const w = api.watches[0] as ServerWatch & { res: Res & Pick<Http2ServerResponse, 'stream'> };
  w.res.write(event('before-reset'));
  assert.equal(((await first)[0] as Buffer).toString(), event('before-reset'));
  // Not once(): the stream errors (reset by the agent) before it closes.
  const streamClosed = new Promise((resolve) => stream.once('close', resolve));
  let streamError: unknown;
  stream.once('error', (err) => {
    streamError = err;
  });
  w.res.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
  await streamClosed;
  assert.equal(res.complete, false, 'the runner sees an incomplete response, never a clean end');
  assert.equal((streamError as { code?: string } | undefined)?.code, 'PT_ERR_MUX_STREAM_RESET');
  await waitFor(async () => (await metricValue(h.registry, 'pipeops_tunnel_k8s_watches_active')) === 0);
  const record = await waitFor(() => h.logs.find((r) => r.msg === 'kube request' && r.verb === 'watch'));
  assert.equal(record.status, 200);
  assert.ok(typeof record.error === 'string', 'the exchange is logged with its error');
});

test('WATCH requests and followed logs take the streaming pool; everything else the HTTP/1.1 one', () => {
  const use = (method: string, target: string): string => upstreamUse(kubeVerb(method, target, false), method, target);
  assert.equal(use('GET', WATCH), 'stream');
  assert.equal(use('GET', '/api/v1/watch/namespaces/default/pods'), 'stream');
  assert.equal(use('GET', '/api/v1/namespaces/default/pods/web-0/log?follow=true&container=app'), 'stream');
  assert.equal(use('GET', '/api/v1/namespaces/default/pods/web-0/log?follow=1'), 'stream');
  assert.equal(use('GET', '/api/v1/namespaces/default/pods/web-0/log?follow=false'), 'request');
  assert.equal(use('GET', '/api/v1/namespaces/default/pods/web-0/log'), 'request');
  assert.equal(use('GET', '/api/v1/namespaces/default/pods'), 'request');
  assert.equal(use('POST', '/api/v1/namespaces/default/pods/web-0/exec?command=sh'), 'request');
});

test('an h2 header object becomes a header list without pseudo-headers, set-cookie kept as repeats', () => {
  assert.deepEqual(headerList({ ':status': '200', 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'], warning: '299 - "x", 299 - "y"' }), [
    'content-type',
    'application/json',
    'set-cookie',
    'a=1',
    'set-cookie',
    'b=2',
    'warning',
    '299 - "x", 299 - "y"',
  ]);
  assert.deepEqual(headerList([Buffer.from('X-A'), Buffer.from('1'), 'x-a', '2']), ['X-A', '1', 'x-a', '2']);
});
