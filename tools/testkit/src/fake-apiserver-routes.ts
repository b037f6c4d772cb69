// The plain-HTTP routes of the fake kube-apiserver. Each answers like the
// real API server would for that shape of exchange (JSON objects, chunked
// WATCH, followed logs, big bodies both ways, HEAD/204/304, many headers,
// trailers, slow and hanging heads); the objects are minimal but real-looking.
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { blobChunks } from './blob.ts';
import type { FeedHub } from './fake-apiserver-feeds.ts';
import type { LogHistory, WatchHistory } from './fake-apiserver-history.ts';
import { handleRbacRoute, type FakeRbacRules } from './fake-apiserver-rbac.ts';

/** `gitVersion` of the fake's `GET /version`. */
export const FAKE_GIT_VERSION = 'v1.32.0-fake';
/** The pods in the fake's `default` namespace. */
export const FAKE_POD_NAMES: readonly string[] = ['web-0', 'web-1', 'worker-0'];
/** Lines of `GET …/pods/{name}/log` without `follow`. */
export const FAKE_LOG_LINES: readonly string[] = ['starting', 'listening on :8080', 'ready'];
/** The fake's `GET /etag` entity tag. */
export const FAKE_ETAG = '"fake-etag-1"';
/** `Warning` values of `GET /headers`, in order. */
export const FAKE_WARNINGS: readonly string[] = ['299 - "first fake warning"', '299 - "second fake warning"'];
/** `Set-Cookie` values of `GET /headers`, in order. */
export const FAKE_COOKIES: readonly string[] = ['a=1; Path=/', 'b=2; Path=/; HttpOnly'];
/** How many `x-fake-N` headers `GET /headers` sends (N = 0 … count-1, value `value-N`). */
export const FAKE_HEADER_COUNT = 40;
/** Body chunks of `GET /trailers`; the `x-checksum` trailer is their SHA-256 hex. */
export const FAKE_TRAILER_CHUNKS: readonly string[] = ['first\n', 'second\n', 'third\n'];

/** What the routes share with the server. */
export interface RouteContext {
  port: number;
  watches: FeedHub;
  logs: FeedHub;
  /** Resourceversioned watch events (replay, 410, bookmarks). */
  watchHistory: WatchHistory;
  /** Timestamped followed log lines (`timestamps`, `sinceTime`). */
  logHistory: LogHistory;
  /** Timers to clear when the server closes. */
  timers: Set<NodeJS.Timeout>;
  /** Counters a test can watch. */
  stats: FakeApiServerStats;
  /** What self-reviews answer (`setFakeRbac`); unset: everything allowed. */
  rbac?: FakeRbacRules;
}

/** Counters of a fake API server. */
export interface FakeApiServerStats {
  /** Bytes of `GET /blob` bodies handed to the TLS socket so far (all requests). With backpressure, a stalled reader stops this growing. */
  blobBytesSent: number;
}

/** A Kubernetes `Status` failure body. */
export function statusBody(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, statusBody(code, reason, message));
}

function pod(name: string, i: number): object {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      name,
      namespace: 'default',
      uid: `00000000-0000-4000-8000-00000000000${i}`,
      resourceVersion: `${100 + i}`,
      creationTimestamp: '2025-01-01T00:00:00Z',
      labels: { app: name.replace(/-\d+$/, '') },
    },
    spec: { containers: [{ name: 'main', image: 'busybox:1.36' }] },
    status: { phase: 'Running', podIP: `10.0.0.${10 + i}` },
  };
}

const POD_PATH = /^\/api\/v1\/namespaces\/default\/pods\/([^/]+)$/;
const LOG_PATH = /^\/api\/v1\/namespaces\/default\/pods\/([^/]+)\/log$/;

/** Answers one authenticated request. */
export function handleRoute(req: IncomingMessage, res: ServerResponse, ctx: RouteContext): void {
  const url = new URL(req.url ?? '/', 'https://fake-apiserver');
  const method = req.method ?? 'GET';
  const path = url.pathname;
  const q = url.searchParams;
  const get = method === 'GET' || method === 'HEAD';
  if (handleRbacRoute(req, res, path, ctx)) return;

  if (get && path === '/version') {
    return sendJson(res, 200, {
      major: '1',
      minor: '32',
      gitVersion: FAKE_GIT_VERSION,
      gitCommit: '0000000000000000000000000000000000000000',
      gitTreeState: 'clean',
      buildDate: '2025-01-01T00:00:00Z',
      goVersion: 'go1.23.4',
      compiler: 'gc',
      platform: 'linux/amd64',
    });
  }
  if (get && (path === '/readyz' || path === '/livez' || path === '/healthz')) {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 2 });
    return void res.end('ok');
  }
  if (get && path === '/api') {
    return sendJson(res, 200, {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${ctx.port}` }],
    });
  }
  if (get && path === '/apis') return sendJson(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
  if (get && path === '/api/v1') {
    const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
    return sendJson(res, 200, {
      kind: 'APIResourceList',
      groupVersion: 'v1',
      resources: [
        { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs, shortNames: ['po'] },
        { name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] },
        { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
        { name: 'configmaps', singularName: 'configmap', namespaced: true, kind: 'ConfigMap', verbs, shortNames: ['cm'] },
      ],
    });
  }
  if (get && path === '/api/v1/namespaces/default/pods') {
    if (q.get('watch') === '1' || q.get('watch') === 'true') return startWatch(res, q, ctx);
    return sendJson(res, 200, {
      kind: 'PodList',
      apiVersion: 'v1',
      metadata: { resourceVersion: String(ctx.watchHistory.resourceVersion) },
      items: FAKE_POD_NAMES.map(pod),
    });
  }
  const logMatch = LOG_PATH.exec(path);
  if (get && logMatch) {
    const name = decodeURIComponent(logMatch[1] ?? '');
    if (!FAKE_POD_NAMES.includes(name)) return sendStatus(res, 404, 'NotFound', `pods "${name}" not found`);
    if (q.get('follow') === 'true' || q.get('follow') === '1') {
      const timestamps = q.get('timestamps') === 'true' || q.get('timestamps') === '1';
      const replay = ctx.logHistory.start(q.get('sinceTime'), timestamps);
      if (replay === undefined) return sendStatus(res, 400, 'BadRequest', `invalid sinceTime: ${q.get('sinceTime')}`);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.flushHeaders();
      for (const line of replay) res.write(line);
      if (timestamps) ctx.logHistory.wantsTimestamps(res);
      return ctx.logs.add(res);
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    return void res.end(FAKE_LOG_LINES.map((l) => `${l}\n`).join(''));
  }
  const podMatch = POD_PATH.exec(path);
  if (get && podMatch) {
    const i = FAKE_POD_NAMES.indexOf(decodeURIComponent(podMatch[1] ?? ''));
    if (i < 0) return sendStatus(res, 404, 'NotFound', `pods "${podMatch[1]}" not found`);
    return sendJson(res, 200, pod(FAKE_POD_NAMES[i] ?? '', i));
  }
  if (method === 'POST' && path === '/api/v1/namespaces/default/configmaps') return void createConfigMap(req, res);
  if (get && path === '/blob') return void sendBlob(res, q, ctx.stats);
  if (method === 'POST' && path === '/sink') return void sink(req, res);
  if (get && path === '/nocontent') {
    res.writeHead(204);
    return void res.end();
  }
  if (get && path === '/etag') {
    if (req.headers['if-none-match'] === FAKE_ETAG) {
      res.writeHead(304, { etag: FAKE_ETAG });
      return void res.end();
    }
    res.setHeader('etag', FAKE_ETAG);
    return sendJson(res, 200, { kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'etag', namespace: 'default' }, data: { k: 'v' } });
  }
  if (get && path === '/headers') {
    res.setHeader('warning', [...FAKE_WARNINGS]);
    res.setHeader('set-cookie', [...FAKE_COOKIES]);
    for (let i = 0; i < FAKE_HEADER_COUNT; i++) res.setHeader(`x-fake-${i}`, `value-${i}`);
    return sendJson(res, 200, { headers: req.headers, rawHeaders: req.rawHeaders });
  }
  if (get && path === '/trailers') {
    const checksum = createHash('sha256').update(FAKE_TRAILER_CHUNKS.join('')).digest('hex');
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    for (const chunk of FAKE_TRAILER_CHUNKS) res.write(chunk);
    res.addTrailers({ 'x-checksum': checksum });
    return void res.end();
  }
  if (get && path === '/slow') {
    const ms = Number(q.get('ms') ?? '1000');
    const timer = setTimeout(
      () => {
        ctx.timers.delete(timer);
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('slow\n');
      },
      Number.isFinite(ms) ? ms : 1000,
    );
    ctx.timers.add(timer);
    res.once('close', () => {
      clearTimeout(timer);
      ctx.timers.delete(timer);
    });
    return;
  }
  if (get && path === '/hang') return; // never answered; the server records the abort when the connection closes
  return sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
}

function startWatch(res: ServerResponse, q: URLSearchParams, ctx: RouteContext): void {
  const start = ctx.watchHistory.start(q.get('resourceVersion'));
  if (!start.ok && start.answer === 'status') return sendJson(res, start.code, start.body);
  res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
  res.flushHeaders();
  if (!start.ok) {
    // What the API server does with a watch from a compacted resourceVersion: one ERROR event, then the end.
    return void res.end(`${JSON.stringify({ type: 'ERROR', object: start.body })}\n`);
  }
  for (const line of start.replay) res.write(line);
  if (q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1') ctx.watchHistory.wantsBookmarks(res);
  ctx.watches.add(res);
  const seconds = Number(q.get('timeoutSeconds') ?? '0');
  if (seconds > 0) {
    const timer = setTimeout(() => {
      ctx.timers.delete(timer);
      res.end();
    }, seconds * 1000);
    ctx.timers.add(timer);
    res.once('close', () => {
      clearTimeout(timer);
      ctx.timers.delete(timer);
    });
  }
}

function* counted(chunks: Iterable<Buffer>, stats: FakeApiServerStats): Generator<Buffer> {
  for (const chunk of chunks) {
    stats.blobBytesSent += chunk.length;
    yield chunk;
  }
}

async function sendBlob(res: ServerResponse, q: URLSearchParams, stats: FakeApiServerStats): Promise<void> {
  const bytes = Number(q.get('bytes') ?? '0');
  const seed = q.get('seed') ?? '';
  if (!Number.isSafeInteger(bytes) || bytes < 0) return sendStatus(res, 400, 'BadRequest', 'bytes must be a non-negative integer');
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes });
  try {
    // pipeline waits for 'drain': a reader that stops reading stops this writer.
    await pipeline(Readable.from(counted(blobChunks(bytes, seed), stats), { objectMode: false, highWaterMark: 1 }), res);
  } catch {
    // the client went away mid-body: recorded as aborted by the server
  }
}

async function sink(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      hash.update(chunk);
    }
  } catch {
    return; // body aborted
  }
  sendJson(res, 200, { bytes, sha256: hash.digest('hex') });
}

async function createConfigMap(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 1_048_576) return sendStatus(res, 413, 'RequestEntityTooLarge', 'request entity too large');
      chunks.push(chunk);
    }
  } catch {
    return;
  }
  let obj: { metadata?: Record<string, unknown> } & Record<string, unknown>;
  try {
    obj = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof obj;
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new Error('not an object');
  } catch (err) {
    return sendStatus(res, 400, 'BadRequest', `invalid ConfigMap: ${(err as Error).message}`);
  }
  sendJson(res, 201, {
    ...obj,
    kind: 'ConfigMap',
    apiVersion: 'v1',
    metadata: { ...obj.metadata, namespace: 'default', uid: randomUUID(), resourceVersion: '2000', creationTimestamp: new Date().toISOString() },
  });
}
