// Rig of the JSON protocol tests: runner (ws client, real TCP) → plain http
// server whose 'upgrade' calls the endpoint's handleUpgrade → openStream over
// a real yamux session pair on a TCP socket pair → serveHttpOverStream → a
// small app that answers like the API server (list, WATCH, logs -f, echo,
// errors). Everything is torn down by t.after().
import { EventEmitter, once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { createSession, type Session } from '@pipeops/tunnel-mux';
import { TunnelError, encodePreamble, readPreamble, serveHttpOverStream, type StreamPreamble } from '@pipeops/tunnel-protocol';
import { createJsonProtocolEndpoint, type JsonProtocolDeps, type JsonProtocolEndpoint } from '../src/json-protocol/index.ts';
import { captureLogger, waitFor } from './helpers/gateway.ts';

type After = { after(fn: () => Promise<void> | void): void };

/** A request the fake API server saw. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  aborted: boolean;
  preamble: StreamPreamble | undefined;
}

/** The API-server-like app on the agent side. */
export class FakeApiApp extends EventEmitter {
  readonly seen: SeenRequest[] = [];
  /** Open WATCH responses, in arrival order. */
  readonly watches: ServerResponse[] = [];
  /** Open log-follow responses. */
  readonly logs: ServerResponse[] = [];
  /** Bytes the flood route managed to write, and whether it is waiting for 'drain'. */
  flood = { bytes: 0, events: 0, blocked: false };

  handle(req: IncomingMessage, res: ServerResponse, preamble: StreamPreamble | undefined): void {
    const chunks: Buffer[] = [];
    const seen: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.alloc(0), aborted: false, preamble };
    this.seen.push(seen);
    res.once('close', () => {
      if (!res.writableFinished) {
        seen.aborted = true;
        this.emit('aborted', seen);
      }
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.body = Buffer.concat(chunks);
      this.emit('request', seen);
      this.#route(req, res, seen);
    });
  }

  #route(req: IncomingMessage, res: ServerResponse, seen: SeenRequest): void {
    const url = new URL(req.url ?? '/', 'http://api');
    const json = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'audit-id': ['a1', 'a2'] });
      res.end(text);
    };
    if (url.pathname === '/api/v1/namespaces/default/pods' && url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json;stream=watch', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      this.watches.push(res);
      this.emit('watch', res);
      return;
    }
    if (url.pathname === '/api/v1/namespaces/default/pods') {
      json(200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '7' }, items: [{ metadata: { name: 'p1' } }, { metadata: { name: 'p2' } }] });
      return;
    }
    if (url.pathname === '/api/v1/namespaces/default/pods/p1/log') {
      res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      this.logs.push(res);
      this.emit('log', res);
      return;
    }
    if (url.pathname === '/echo') {
      json(201, { method: req.method, query: url.search, contentType: req.headers['content-type'] ?? null, body: seen.body.toString('base64') });
      return;
    }
    if (url.pathname === '/binary') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.from([0, 1, 2, 0xff, 0xfe]));
      return;
    }
    if (url.pathname === '/hang') return;
    if (url.pathname === '/flood') {
      this.#flood(res);
      return;
    }
    json(404, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `${url.pathname} not found`, reason: 'NotFound', code: 404 });
  }

  // A WATCH that writes events as fast as the stream takes them (pausing on backpressure).
  #flood(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json;stream=watch' });
    const pad = 'x'.repeat(4000);
    const write = (): void => {
      while (!res.destroyed) {
        const line = `${JSON.stringify({ type: 'ADDED', object: { n: this.flood.events, pad } })}\n`;
        this.flood.events++;
        this.flood.bytes += line.length;
        if (!res.write(line)) {
          this.flood.blocked = true;
          res.once('drain', () => {
            this.flood.blocked = false;
            write();
          });
          return;
        }
      }
    };
    write();
  }
}

/** A runner's socket with every received message kept, and waits on them. */
export class RunnerClient {
  readonly ws: WebSocket;
  readonly messages: Record<string, unknown>[] = [];
  readonly #arrivals = new EventEmitter();

  constructor(ws: WebSocket) {
    this.ws = ws;
    this.#arrivals.setMaxListeners(0);
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      this.messages.push(msg);
      this.#arrivals.emit('message', msg);
    });
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** Messages for `id`, in arrival order. */
  for(id: unknown): Record<string, unknown>[] {
    return this.messages.filter((m) => m.id === id);
  }

  /** Resolves with the first message (already received or future) matching `pred`, failing after `deadlineMs`. */
  next(pred: (m: Record<string, unknown>) => boolean, deadlineMs = 10_000, skip = 0): Promise<Record<string, unknown>> {
    let seen = 0;
    for (const m of this.messages) if (pred(m) && seen++ === skip) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#arrivals.off('message', on);
        reject(new Error(`no matching message within ${deadlineMs} ms; got ${JSON.stringify(this.messages.slice(-5))}`));
      }, deadlineMs);
      const on = (m: Record<string, unknown>): void => {
        if (!pred(m) || seen++ !== skip) return;
        clearTimeout(timer);
        this.#arrivals.off('message', on);
        resolve(m);
      };
      this.#arrivals.on('message', on);
    });
  }

  /** The final message for `id`: a reply (has `body`), `done`, or `error`. */
  final(id: unknown, deadlineMs = 10_000): Promise<Record<string, unknown>> {
    return this.next((m) => m.id === id && ('body' in m || 'done' in m || 'error' in m), deadlineMs);
  }

  /** Sends a request and resolves with its final message. */
  async request(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.send(msg);
    return this.final(msg.id);
  }
}

export interface JsonRig {
  endpoint: JsonProtocolEndpoint;
  app: FakeApiApp;
  url: string;
  log: ReturnType<typeof captureLogger>;
  /** The agent-side session (its streams are the app's connections). */
  agentSession: Session;
  connect(opts?: { cluster?: string; autoPong?: boolean }): Promise<RunnerClient>;
}

/** Builds the rig; `deps` overrides the endpoint's limits. */
export async function startJsonRig(t: After, deps: Partial<JsonProtocolDeps> = {}): Promise<JsonRig> {
  // The mux transport: a real TCP socket pair on 127.0.0.1.
  const tcp = net.createServer();
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const accepted = once(tcp, 'connection') as Promise<[net.Socket]>;
  const sock = net.connect((tcp.address() as AddressInfo).port, '127.0.0.1');
  const [[far]] = await Promise.all([accepted, once(sock, 'connect')]);
  sock.setNoDelay(true);
  far.setNoDelay(true);
  const gatewaySession = createSession(sock, { client: false, keepAliveIntervalMs: 0 });
  const agentSession = createSession(far, { client: true, keepAliveIntervalMs: 0 });
  gatewaySession.on('error', () => {});
  agentSession.on('error', () => {});

  const app = new FakeApiApp();
  const preambles = new WeakMap<object, StreamPreamble>();
  const upstream = http.createServer((req, res) => app.handle(req, res, preambles.get(req.socket)));
  agentSession.on('stream', (s: Duplex) => {
    s.on('error', () => {});
    readPreamble(s).then(
      (p) => {
        preambles.set(s, p);
        serveHttpOverStream(upstream, s);
      },
      () => s.destroy(),
    );
  });

  const log = captureLogger();
  const endpoint = createJsonProtocolEndpoint({
    maxMessageBytes: 64 * 1024,
    logger: log.logger,
    openStream: async (cluster, preamble) => {
      if (cluster !== 'c1') throw new TunnelError('PT_ERR_CLUSTER_NOT_CONNECTED', `cluster ${cluster} is not connected`);
      const s = gatewaySession.open();
      s.write(encodePreamble({ v: 1, ...preamble }));
      return s;
    },
    ...deps,
  });
  const front = http.createServer((_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  front.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const cluster = new URL(req.url ?? '/', 'http://gw').searchParams.get('cluster') ?? '';
    endpoint.handleUpgrade(req, socket, head, { runnerId: 'r1', cluster });
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  const url = `ws://127.0.0.1:${(front.address() as AddressInfo).port}/ws/k8s`;
  const clients: WebSocket[] = [];

  t.after(async () => {
    for (const ws of clients) ws.terminate();
    await endpoint.close();
    front.closeAllConnections();
    await new Promise<void>((r) => front.close(() => r()));
    for (const res of [...app.watches, ...app.logs]) res.destroy();
    gatewaySession.destroy();
    agentSession.destroy();
    sock.destroy();
    far.destroy();
    await new Promise<void>((r) => tcp.close(() => r()));
  });

  return {
    endpoint,
    app,
    url,
    log,
    agentSession,
    async connect(opts = {}) {
      const ws = new WebSocket(`${url}?cluster=${opts.cluster ?? 'c1'}`, { perMessageDeflate: false, autoPong: opts.autoPong ?? true });
      clients.push(ws);
      ws.on('error', () => {});
      await once(ws, 'open');
      return new RunnerClient(ws);
    },
  };
}

export { waitFor };
