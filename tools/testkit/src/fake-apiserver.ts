// A test double of kube-apiserver (a real one arrives with issue 4): HTTPS on
// 127.0.0.1 with its own CA, bearer-token auth with a token it makes up (the
// agent's credential), every request recorded, and one route per shape of
// exchange the tunnel must carry. See fake-apiserver-routes.ts and
// fake-apiserver-upgrade.ts for the routes.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { readOnWhileFlushing } from '@pipeops/tunnel-protocol';
import { testCertificates, type TestCertificates } from './certificates.ts';
import { FeedHub, logsControl, watchControl, type LogsControl, type WatchControl } from './fake-apiserver-feeds.ts';
import { LogHistory, WatchHistory } from './fake-apiserver-history.ts';
import { handleRoute, statusBody, type FakeApiServerStats, type RouteContext } from './fake-apiserver-routes.ts';
import { rejectUpgrade, UpgradeHandler } from './fake-apiserver-upgrade.ts';
import { waitFor } from './wait-for.ts';

/** Options of {@link startFakeApiServer}. */
export interface FakeApiServerOptions {
  /** The bearer token it requires. Default: 32 random bytes, base64url. */
  token?: string;
  /** Its TLS identity. Default {@link testCertificates}`('apiserver')` (a CA of its own). */
  certificates?: TestCertificates;
}

/** One request the fake received (recorded before auth, so rejected ones are here too). */
export interface RecordedRequest {
  /** 1, 2, 3… in arrival order. */
  seq: number;
  method: string;
  /** Request target as received, query included. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Header names and values as received, in order, repeats included. */
  rawHeaders: string[];
  /** It was an `upgrade` request (exec/attach/portforward). */
  upgrade: boolean;
  /** It carried the right bearer token. */
  authorized: boolean;
  /** `Date.now()` on arrival. */
  at: number;
}

/** A request whose connection closed before its response ended. */
export interface AbortedRequest extends RecordedRequest {
  /** `Date.now()` when the response closed unfinished. */
  abortedAt: number;
}

/** The aborted requests, and a way to wait for one. */
export interface AbortRecord {
  readonly entries: readonly AbortedRequest[];
  /** Resolves with the first aborted request matching `pred` (default: any), waiting up to `timeoutMs` (default 5_000). */
  wait(pred?: (r: AbortedRequest) => boolean, timeoutMs?: number): Promise<AbortedRequest>;
}

/** A running fake API server. */
export interface FakeApiServer {
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** PEM of the CA that signed its certificate. */
  readonly caCert: string;
  /** The bearer token it requires. */
  readonly token: string;
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[];
  readonly aborted: AbortRecord;
  readonly watch: WatchControl;
  readonly logs: LogsControl;
  /** Live counters. */
  readonly stats: FakeApiServerStats;
  /** Stops listening and ends every connection (open watches and upgrades included). Idempotent. */
  close(): Promise<void>;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return header !== undefined && timingSafeEqual(digest(header), digest(`Bearer ${token}`));
}

/** Starts a {@link FakeApiServer} on 127.0.0.1, on an ephemeral port. */
export async function startFakeApiServer(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const certs = opts.certificates ?? testCertificates('apiserver');
  const token = opts.token ?? randomBytes(32).toString('base64url');
  const requests: RecordedRequest[] = [];
  const abortedEntries: AbortedRequest[] = [];
  const watches = new FeedHub('watches');
  const logs = new FeedHub('log followers');
  const ctx: RouteContext = {
    port: 0,
    watches,
    logs,
    watchHistory: new WatchHistory(watches),
    logHistory: new LogHistory(logs),
    timers: new Set(),
    stats: { blobBytesSent: 0 },
  };
  const upgrades = new UpgradeHandler();

  const record = (req: IncomingMessage, upgrade: boolean): RecordedRequest => {
    const entry: RecordedRequest = {
      seq: requests.length + 1,
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      upgrade,
      authorized: tokenMatches(req.headers.authorization, token),
      at: Date.now(),
    };
    requests.push(entry);
    return entry;
  };

  // allowHalfOpen: an upgraded socket's write side stays open after the client's FIN (SPDY half-close).
  const server: Server = createServer({ cert: certs.cert, key: certs.key, allowHalfOpen: true }, (req: IncomingMessage, res: ServerResponse) => {
    // As kube-apiserver (Go): a request right after a large answer is read on, not reset with HPE_PAUSED.
    readOnWhileFlushing(req, res);
    const entry = record(req, false);
    res.once('close', () => {
      if (!res.writableFinished) abortedEntries.push({ ...entry, abortedAt: Date.now() });
    });
    if (!entry.authorized) {
      const body = statusBody(401, 'Unauthorized', 'Unauthorized');
      res.writeHead(401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      return void res.end(body);
    }
    handleRoute(req, res, ctx);
  });
  server.keepAliveTimeout = 30_000;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const entry = record(req, true);
    if (!entry.authorized) return rejectUpgrade(socket, 401, 'Unauthorized', 'Unauthorized');
    upgrades.handle(req, socket, head);
  });
  server.on('tlsClientError', () => {
    /* a client that gives up mid-handshake is not our failure */
  });
  // Every raw connection, so close() can end even those stuck before or in the TLS handshake.
  const sockets = new Set<Duplex>();
  server.on('connection', (socket: Duplex) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  ctx.port = port;

  let closing: Promise<void> | undefined;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    caCert: certs.caCert,
    token,
    requests,
    aborted: {
      entries: abortedEntries,
      wait: (pred = () => true, timeoutMs = 5_000) =>
        waitFor(() => abortedEntries.find(pred), { timeoutMs, what: 'an aborted request at the fake API server' }),
    },
    watch: watchControl(ctx.watches, ctx.watchHistory),
    logs: logsControl(ctx.logs, ctx.logHistory),
    stats: ctx.stats,
    close() {
      closing ??= (async () => {
        for (const t of ctx.timers) clearTimeout(t);
        ctx.watches.end();
        ctx.logs.end();
        upgrades.close();
        const closed = once(server, 'close');
        server.close();
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
        await closed;
      })();
      return closing;
    },
  };
}
