// The benchmark's upstream: a stand-in for kube-apiserver (a test double,
// named as one in the report) that serves only what the full-path scenarios
// ask for, as cheaply as it can, so the figures measure the paths to it and
// not it. HTTPS on 127.0.0.1 with its own CA, bearer token required. Like
// kube-apiserver (Go net/http) it offers HTTP/2 by ALPN with at most 250
// concurrent streams per connection, and HTTP/1.1 keep-alive to clients that
// do not take h2. Run as its own process:
//
//   node upstream.ts --dir DIR
//
// writes DIR/upstream-ca.pem and prints
// `READY {"url","port","controlUrl","caFile","token"}`; exits when stdin closes.
//
// Routes (API port, TLS):
//   GET  /readyz, /version                   what the agent's health check asks
//   GET  /bench/blob?bytes=N                 N bytes (content-length), 64 KiB writes with backpressure
//   PUT  /bench/sink                         reads the body, answers {"bytes":N}
//   GET  /api/v1/namespaces/bench/configmaps/small   a ~1 KiB ConfigMap JSON
//   GET  /api/v1/namespaces/bench/configmaps?watch=true   a WATCH that stays open
// Control (plain HTTP, a second port, never through a tunnel):
//   POST /emit?count=K   one event to each of K watches picked at random; every
//                        event carries `emittedAtNs` (process.hrtime, i.e.
//                        CLOCK_MONOTONIC, comparable across processes)
//   GET  /stats          {"watches": open WATCH count, "blobBytesWritten": bytes}
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { testCertificates } from '@pipeops/tunnel-testkit';

const { values } = parseArgs({ options: { dir: { type: 'string' } } });
if (values.dir === undefined) throw new Error('upstream: --dir is required');

const CHUNK = randomBytes(64 * 1024);
const token = randomBytes(24).toString('base64url');
const expected = Buffer.from(`Bearer ${token}`);
const certs = testCertificates('bench-upstream');
const caFile = join(values.dir, 'upstream-ca.pem');
writeFileSync(caFile, certs.caCert);

const SMALL = JSON.stringify({
  kind: 'ConfigMap',
  apiVersion: 'v1',
  metadata: { name: 'small', namespace: 'bench', resourceVersion: '1', uid: '9c1d7a8e-3f51-4c7e-9a52-5f3b0f1f2d11' },
  data: Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`key-${i}`, 'v'.repeat(60)])),
});
/**
 * What the routes use of a request and a response: common to node:http and
 * the compatibility API of node:http2 (its typings lack `flushHeaders`,
 * which exists and sends the HEADERS frame).
 */
interface Req {
  readonly url?: string | undefined;
  readonly method?: string | undefined;
  readonly headers: http.IncomingHttpHeaders;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
}
interface Res {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  flushHeaders(): void;
  write(chunk: Buffer | string): boolean;
  end(body?: string): unknown;
  once(event: 'drain', fn: () => void): unknown;
  on(event: 'close', fn: () => void): unknown;
}

const watches = new Set<Res>();
let eventSeq = 0;
/** Body bytes the blob route has handed to its sockets so far (for the paused-reader scenario: it stops growing when the path is full). */
let blobBytesWritten = 0;

function authorized(req: Req): boolean {
  const got = Buffer.from(req.headers.authorization ?? '');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

function json(res: Res, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function blob(res: Res, bytes: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes });
  let left = bytes;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      blobBytesWritten += n;
      const more = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
      if (!more) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

function sink(req: Req, res: Res): void {
  let bytes = 0;
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  req.on('end', () => json(res, 200, JSON.stringify({ bytes })));
}

function watch(res: Res): void {
  // No Content-Length: HTTP/1.1 answers chunked, h2 needs no framing header
  // (and forbids Transfer-Encoding).
  res.writeHead(200, { 'content-type': 'application/json' });
  res.flushHeaders();
  watches.add(res);
  res.on('close', () => watches.delete(res));
}

const api = http2.createSecureServer(
  {
    key: certs.key,
    cert: certs.cert,
    allowHTTP1: true,
    settings: { maxConcurrentStreams: 250 },
  },
  (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => route(req, res as unknown as Res),
);

function route(req: Req, res: Res): void {
  if (!authorized(req)) {
    json(res, 401, '{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}');
    return;
  }
  const url = new URL(req.url ?? '/', 'https://upstream.invalid');
  if (url.pathname === '/readyz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
    return;
  }
  if (url.pathname === '/version') {
    json(res, 200, '{"major":"1","minor":"33","gitVersion":"v1.33.0-bench-upstream"}');
    return;
  }
  if (url.pathname === '/bench/blob') {
    blob(res, Number(url.searchParams.get('bytes') ?? '0'));
    return;
  }
  if (url.pathname === '/bench/sink') {
    sink(req, res);
    return;
  }
  if (url.pathname === '/api/v1/namespaces/bench/configmaps/small') {
    json(res, 200, SMALL);
    return;
  }
  if (url.pathname === '/api/v1/namespaces/bench/configmaps' && url.searchParams.get('watch') === 'true') {
    watch(res);
    return;
  }
  json(res, 404, '{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}');
}
// No timeouts on either protocol: a WATCH may be silent for the whole run.
// The socket timeout covers h2 sessions and HTTP/1.1 sockets; the HTTP/1.1
// side (allowHTTP1) also reads the http.Server head/request timeouts off this
// server (60 s / 300 s unless set). HTTP/1.1 keep-alive between requests is on
// (keepAliveTimeout 5 s, as before).
api.setTimeout(0);
Object.assign(api, { headersTimeout: 0, requestTimeout: 0 });
api.maxConnections = 100_000;

/** Writes one event to each of `count` watches picked at random (without repeats). */
function emit(count: number): number {
  const open = [...watches];
  const n = Math.min(count, open.length);
  for (let i = 0; i < n; i++) {
    const j = i + randomInt(open.length - i);
    [open[i], open[j]] = [open[j]!, open[i]!];
    const event = {
      type: 'MODIFIED',
      seq: ++eventSeq,
      emittedAtNs: process.hrtime.bigint().toString(),
      object: { kind: 'ConfigMap', metadata: { name: 'small', namespace: 'bench' } },
    };
    open[i]!.write(`${JSON.stringify(event)}\n`);
  }
  return n;
}

const control = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://control.invalid');
  if (req.method === 'POST' && url.pathname === '/emit') {
    json(res, 200, JSON.stringify({ emitted: emit(Number(url.searchParams.get('count') ?? '1')) }));
    return;
  }
  if (url.pathname === '/stats') {
    json(res, 200, JSON.stringify({ watches: watches.size, blobBytesWritten }));
    return;
  }
  json(res, 404, '{}');
});

api.listen(0, '127.0.0.1');
control.listen(0, '127.0.0.1');
await Promise.all([once(api, 'listening'), once(control, 'listening')]);
const port = (api.address() as AddressInfo).port;
const controlPort = (control.address() as AddressInfo).port;
process.stdout.write(`READY ${JSON.stringify({ url: `https://127.0.0.1:${port}`, port, controlUrl: `http://127.0.0.1:${controlPort}`, caFile, token })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
