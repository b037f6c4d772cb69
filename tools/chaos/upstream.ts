// The chaos harness's API server: a stand-in for kube-apiserver (a test
// double) in a process of its own, so the harness can SIGKILL, SIGSTOP and
// SIGCONT it, and start it again on the same port with the same certificate
// and token. Like kube-apiserver it offers HTTP/2 by ALPN and HTTP/1.1 (the
// agent carries WATCH and followed logs over h2, the rest over HTTP/1.1).
//
//   node upstream.ts --identity FILE [--port P]
//
// FILE is JSON `{ cert, key, token }` (PEM, PEM, bearer token); prints
// `READY {"port":N}` once listening on 127.0.0.1; exits on SIGTERM.
//
// Routes (bearer token required except /chaos/stats), each a shape of
// exchange the chaos runs carry, with bytes from ./src/payload.ts:
//   GET  /readyz, /livez, /version          the agent's health checks
//   GET  /chaos/blob?bytes=N&seed=S         N bytes, Content-Length, written with backpressure
//   GET  /chaos/chunked?bytes=N&seed=S      the same bytes, no length (chunked / h2 DATA), in random pieces
//   PUT  /chaos/sink                        reads the body, answers {"bytes","sha256"}
//   GET  /api/v1/namespaces/default/pods?watch=true&events=K&seed=S&intervalMs=I
//                                           K WATCH events, a few every I ms, then the response ends
//   GET  /api/v1/namespaces/default/pods/web-0/log?follow=true&lines=K&seed=S&intervalMs=I
//                                           K log lines, paced the same way, then the response ends
//   GET  /chaos/stats                       {"active": open responses and upgrades, "open": what they are}
//   upgrade …/pods/web-0/exec, …/portforward
//                                           WebSocket (v5/v4.channel.k8s.io, portforward.k8s.io): echoes
//                                           every message; "<channel>close" is answered with a 1000 close.
//                                           SPDY/3.1: the 101 head, then raw echo; after the client's FIN
//                                           it writes "bye\n" and ends
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { blobPieces, logLines, watchEvents } from './src/payload.ts';

const { values } = parseArgs({ options: { identity: { type: 'string' }, port: { type: 'string', default: '0' } } });
if (values.identity === undefined) throw new Error('chaos upstream: --identity is required');
const identity = JSON.parse(readFileSync(values.identity, 'utf8')) as { cert: string; key: string; token: string };
const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
const expected = digest(`Bearer ${identity.token}`);

type Req = http2.Http2ServerRequest;
type Res = http2.Http2ServerResponse;

/** Open responses and upgraded connections (what each is): what the agent must close when the runner's stream goes. */
const open = new Map<object, string>();
function track(res: { once(e: 'close', fn: () => void): unknown }, what: string): void {
  open.set(res, what);
  res.once('close', () => open.delete(res));
}

function json(res: Res, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Writes `pieces` with backpressure, then ends; stops if the response closes first. */
function pump(res: Res, pieces: Iterator<Buffer | string>): void {
  const step = (): void => {
    for (;;) {
      if (res.destroyed || res.writableEnded) return;
      const r = pieces.next();
      if (r.done) return void res.end();
      if (!res.write(r.value)) return void res.once('drain', step);
    }
  };
  step();
}

/** Writes `pieces` a few at a time every `intervalMs`, then ends: a WATCH or a followed log that finishes. */
function paced(res: Res, pieces: Iterator<string>, intervalMs: number, perTick: number): void {
  res.writeHead(200, { 'content-type': res.req.url?.includes('/log') ? 'text/plain' : 'application/json' });
  const timer = setInterval(() => {
    if (res.destroyed) return void clearInterval(timer);
    for (let i = 0; i < perTick; i++) {
      const r = pieces.next();
      if (r.done) {
        clearInterval(timer);
        return void res.end();
      }
      res.write(r.value);
    }
  }, intervalMs);
  res.once('close', () => clearInterval(timer));
}

function num(q: URLSearchParams, name: string, fallback: number): number {
  const n = Number(q.get(name) ?? fallback);
  return Number.isSafeInteger(n) && n >= 0 ? n : fallback;
}

function route(req: Req, res: Res): void {
  const url = new URL(req.url ?? '/', 'https://chaos-upstream.invalid');
  const q = url.searchParams;
  const seed = q.get('seed') ?? '';
  if (url.pathname === '/chaos/stats') return void json(res, 200, { active: open.size, open: [...open.values()] });
  const auth = req.headers.authorization;
  if (auth === undefined || !timingSafeEqual(digest(auth), expected)) return void json(res, 401, { kind: 'Status', code: 401, reason: 'Unauthorized' });
  if (url.pathname === '/readyz' || url.pathname === '/livez' || url.pathname === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
    return void res.end('ok');
  }
  if (url.pathname === '/version') return void json(res, 200, { major: '1', minor: '33', gitVersion: 'v1.33.0-chaos-upstream' });
  track(res, `${req.httpVersion === '2.0' ? 'h2' : 'h1'} ${req.method} ${url.pathname}`);
  if (url.pathname === '/chaos/blob') {
    const bytes = num(q, 'bytes', 0);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes });
    return void pump(res, blobPieces(bytes, seed, 65_536));
  }
  if (url.pathname === '/chaos/chunked') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    return void pump(res, blobPieces(num(q, 'bytes', 0), seed, 24_000));
  }
  if (url.pathname === '/chaos/sink') {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.once('end', () => json(res, 200, { bytes, sha256: hash.digest('hex') }));
    return;
  }
  if (url.pathname === '/api/v1/namespaces/default/pods' && q.get('watch') === 'true') {
    return void paced(res, watchEvents(num(q, 'events', 0), seed), num(q, 'intervalMs', 20), 3);
  }
  if (url.pathname === '/api/v1/namespaces/default/pods/web-0/log' && q.get('follow') === 'true') {
    return void paced(res, logLines(num(q, 'lines', 0), seed), num(q, 'intervalMs', 20), 3);
  }
  json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' });
}

const WS_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'portforward.k8s.io'];
const UPGRADE_PATHS = ['/api/v1/namespaces/default/pods/web-0/exec', '/api/v1/namespaces/default/pods/web-0/portforward'];
const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  handleProtocols: (offered: Set<string>) => [...offered].find((p) => WS_PROTOCOLS.includes(p)) ?? false,
});

function echoWebSocket(ws: WebSocket): void {
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const buf = data as Buffer;
    if (buf.subarray(1).toString('latin1') === 'close') ws.close(1000, 'done');
    else ws.send(buf, { binary: isBinary });
  });
  ws.on('error', () => ws.terminate());
}

function refuse(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
}

function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  const auth = req.headers.authorization;
  if (auth === undefined || !timingSafeEqual(digest(auth), expected)) return void refuse(socket, 401, 'Unauthorized');
  const path = new URL(req.url ?? '/', 'https://chaos-upstream.invalid').pathname;
  const kind = (req.headers.upgrade ?? '').toLowerCase();
  track(socket, `upgrade ${kind} ${path}`);
  if (!UPGRADE_PATHS.includes(path)) return void refuse(socket, 404, 'Not Found');
  if (kind === 'websocket') return void wss.handleUpgrade(req, socket, head, echoWebSocket);
  if (kind === 'spdy/3.1') {
    const version = String(req.headers['x-stream-protocol-version'] ?? '').split(',')[0];
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${version}\r\n\r\n`);
    if (head.length > 0) socket.write(head);
    socket.pipe(socket, { end: false });
    socket.once('end', () => socket.end('bye\n'));
    return;
  }
  refuse(socket, 400, 'Bad Request');
}

// allowHalfOpen: an upgraded socket's write side stays open after the client's FIN (SPDY half-close).
const server = http2.createSecureServer({ cert: identity.cert, key: identity.key, allowHTTP1: true, allowHalfOpen: true }, route);
server.on('upgrade', upgrade);
// allowHalfOpen is for the upgraded HTTP/1.1 sockets; an h2 connection whose
// client has gone (FIN) is over, as it is for kube-apiserver (Go closes the
// connection and cancels its streams on EOF).
server.on('session', (session: http2.ServerHttp2Session) => session.socket.once('end', () => session.destroy()));
server.setTimeout(0);
server.listen(Number(values.port), '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`READY ${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
process.once('SIGTERM', () => process.exit(0));
