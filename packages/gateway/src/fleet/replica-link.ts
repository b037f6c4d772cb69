// Replica to replica: a runner request that lands on a replica without its
// cluster's tunnel goes to the owner over one mux session per pair of
// replicas (WebSocket over TLS to the owner's `GET /v1/replica`, the shared
// replica secret as its bearer token). Each request is one mux stream: a
// JSON line saying what it wants, the owner's JSON line answer, then the
// agent stream's bytes both ways as they are — backpressure by the mux
// windows, cancellation by a stream reset, never through Redis.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { createSession, type Session, type SessionOptions, type Stream } from '@pipeops/tunnel-mux';
import {
  openWebSocket,
  readLine,
  splice,
  tunnelWebSocketClientOptions,
  TunnelError,
  websocketDuplex,
  type LineErrors,
  type StreamPreamble,
} from '@pipeops/tunnel-protocol';
import type { ClusterInfo } from '../agent-report.ts';
import { gatewayError } from '../errors.ts';
import { refuseUpgrade } from '../http-util.ts';

/** The path replicas dial each other on. */
export const REPLICA_PATH = '/v1/replica';
/** The WebSocket subprotocol of a replica link. */
export const REPLICA_SUBPROTOCOL = 'pipeops-tunnel-replica.v1';

const MAX_LINE_BYTES = 64 * 1024;

/** What a stream of a replica link asks the owner for. */
type LinkRequest = { op: 'open'; cluster: string; preamble: Omit<StreamPreamble, 'v'> } | { op: 'clusters' };

/** The owner's first line: `ok`, with the clusters for `clusters`; or the error that refused the request. */
type LinkReply = { ok: true; clusters?: ClusterInfo[] } | { ok: false; code: string; message: string; status?: number };

const lineErrors = (what: string): LineErrors => ({
  tooLarge: (max) => gatewayError('PT_ERR_REPLICA_LINK', `${what} longer than ${max} bytes`),
  cut: (cause) => gatewayError('PT_ERR_REPLICA_LINK', `the replica link stream ended before the ${what}`, cause === undefined ? {} : { cause }),
});

function sha256(s: string | Buffer): Buffer {
  return createHash('sha256').update(s).digest();
}

/** What the owner's side of replica links needs from the gateway. */
export interface ReplicaEndpointDeps {
  /** The shared replica secret. */
  secret: string;
  logger: Logger;
  maxPayloadBytes: number;
  mux: Partial<SessionOptions> | undefined;
  /** Opens a stream to a cluster whose tunnel this replica holds (never forwards again). */
  openLocal(cluster: string, preamble: Omit<StreamPreamble, 'v'>): Promise<Duplex>;
  /** The clusters whose tunnels this replica holds. */
  localClusters(): ClusterInfo[];
}

/** The owner's side: `GET /v1/replica` upgrades, authenticated by the replica secret, each stream served as one request. */
export class ReplicaEndpoint {
  readonly #deps: ReplicaEndpointDeps;
  readonly #secretHash: Buffer;
  readonly #wss: WebSocketServer;
  readonly #sessions = new Set<Session>();

  constructor(deps: ReplicaEndpointDeps) {
    this.#deps = deps;
    this.#secretHash = sha256(deps.secret);
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: deps.maxPayloadBytes,
      clientTracking: true,
      handleProtocols: (protocols) => (protocols.has(REPLICA_SUBPROTOCOL) ? REPLICA_SUBPROTOCOL : false),
    });
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const log = this.#deps.logger;
    const auth = req.headers.authorization ?? '';
    const given = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    // Compared as digests: equal length, constant time; the secret itself never reaches a log.
    if (req.method !== 'GET' || !timingSafeEqual(sha256(given), this.#secretHash)) {
      log.warn({ event: 'replica_refused', remoteAddress: req.socket.remoteAddress }, 'replica link refused: bad or missing replica secret');
      refuseUpgrade(socket, 401, 'PT_ERR_AUTH_REJECTED', 'replica secret missing or rejected', { 'WWW-Authenticate': 'Bearer' });
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const session = createSession(websocketDuplex(ws), { ...this.#deps.mux, client: false });
      this.#sessions.add(session);
      session.on('error', (err: Error) => log.debug({ event: 'replica_session_error', err }, 'replica link session error'));
      session.on('stream', (stream: Stream) => void this.#serve(stream));
      session.once('close', () => this.#sessions.delete(session));
      ws.once('close', () => {
        if (!session.isClosed) session.destroy();
      });
      log.info({ event: 'replica_link_accepted', remoteAddress: req.socket.remoteAddress }, 'replica link accepted');
    });
  }

  async #serve(stream: Stream): Promise<void> {
    stream.on('error', () => {});
    let request: LinkRequest;
    try {
      request = parseRequest(await readLine(stream, MAX_LINE_BYTES, lineErrors('request line')));
    } catch (err) {
      this.#deps.logger.warn({ event: 'replica_stream_invalid', code: (err as TunnelError).code, err }, 'replica link stream refused');
      reply(stream, { ok: false, code: 'PT_ERR_REPLICA_LINK', message: (err as Error).message }, true);
      return;
    }
    if (request.op === 'clusters') {
      reply(stream, { ok: true, clusters: this.#deps.localClusters() }, true);
      return;
    }
    let agent: Duplex;
    try {
      agent = await this.#deps.openLocal(request.cluster, request.preamble);
    } catch (err) {
      const e = err as TunnelError;
      reply(stream, { ok: false, code: e.code ?? 'PT_ERR_INTERNAL', message: e.message, ...(e.status === undefined ? {} : { status: e.status }) }, true);
      return;
    }
    if (stream.destroyed) {
      agent.destroy();
      return;
    }
    reply(stream, { ok: true }, false);
    const tally = { bytesIn: 0, bytesOut: 0 };
    splice(stream, agent, tally, 'bytesIn');
    splice(agent, stream, tally, 'bytesOut');
  }

  /** Ends every replica link session (their streams are reset). */
  close(): Promise<void> {
    for (const s of this.#sessions) s.destroy();
    for (const ws of this.#wss.clients) ws.terminate();
    return new Promise((resolve) => this.#wss.close(() => resolve()));
  }
}

function reply(stream: Duplex, r: LinkReply, end: boolean): void {
  const line = `${JSON.stringify(r)}\n`;
  if (end) stream.end(line);
  else stream.write(line);
}

function parseRequest(line: string): LinkRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw gatewayError('PT_ERR_REPLICA_LINK', 'request line is not JSON');
  }
  const r = v as Record<string, unknown> | null;
  if (r === null || typeof r !== 'object') throw gatewayError('PT_ERR_REPLICA_LINK', 'request line is not an object');
  if (r.op === 'clusters') return { op: 'clusters' };
  const p = r.preamble as Record<string, unknown> | null;
  if (
    r.op !== 'open' ||
    typeof r.cluster !== 'string' ||
    r.cluster === '' ||
    p === null ||
    typeof p !== 'object' ||
    typeof p.kind !== 'string' ||
    typeof p.requestId !== 'string'
  ) {
    throw gatewayError('PT_ERR_REPLICA_LINK', 'request line is not an open or clusters request');
  }
  return { op: 'open', cluster: r.cluster, preamble: p as unknown as Omit<StreamPreamble, 'v'> };
}

/** Options of {@link ReplicaLinks}. */
export interface ReplicaLinksOptions {
  secret: string;
  /** CA the other replicas' certificates are checked against (default: the system's). */
  ca?: string | Buffer | undefined;
  logger: Logger;
  mux: Partial<SessionOptions> | undefined;
  /** Dial and handshake deadline (ms). Default 5_000. */
  dialTimeoutMs?: number;
}

/** The requesting side: one mux session per owner URL, dialed on first use and again after it ends. */
export class ReplicaLinks {
  readonly #o: ReplicaLinksOptions;
  readonly #sessions = new Map<string, Promise<Session>>();
  readonly #abort = new AbortController();

  constructor(o: ReplicaLinksOptions) {
    this.#o = o;
  }

  /** Opens a stream to `cluster`'s agent through the owner at `url`. Rejects with the owner's error (e.g. 503 not connected) or 503 `PT_ERR_REPLICA_UNREACHABLE`. */
  async open(url: string, cluster: string, preamble: Omit<StreamPreamble, 'v'>): Promise<Stream> {
    const { stream, reply: r } = await this.#request(url, { op: 'open', cluster, preamble });
    if (!r.ok) {
      stream.destroy();
      throw new TunnelError(r.code, r.message, r.status === undefined ? {} : { status: r.status });
    }
    return stream;
  }

  /** The clusters whose tunnels the replica at `url` holds. */
  async clusters(url: string): Promise<ClusterInfo[]> {
    const { stream, reply: r } = await this.#request(url, { op: 'clusters' });
    stream.destroy();
    if (!r.ok) throw new TunnelError(r.code, r.message);
    return r.clusters ?? [];
  }

  async #request(url: string, request: LinkRequest): Promise<{ stream: Stream; reply: LinkReply }> {
    let stream: Stream;
    try {
      const session = await this.#session(url);
      stream = session.open();
      if (request.op === 'open' && request.preamble.runnerId !== undefined) stream.setGroup(request.preamble.runnerId);
    } catch (err) {
      throw gatewayError('PT_ERR_REPLICA_UNREACHABLE', `the replica holding the tunnel (${url}) cannot be reached: ${(err as Error).message}`, { cause: err });
    }
    stream.on('error', () => {});
    stream.write(`${JSON.stringify(request)}\n`);
    let line: string;
    try {
      line = await readLine(stream, MAX_LINE_BYTES, lineErrors('answer line'));
    } catch (err) {
      stream.destroy();
      throw gatewayError('PT_ERR_REPLICA_UNREACHABLE', `the replica holding the tunnel (${url}) did not answer: ${(err as Error).message}`, { cause: err });
    }
    try {
      return { stream, reply: JSON.parse(line) as LinkReply };
    } catch (err) {
      stream.destroy();
      throw gatewayError('PT_ERR_REPLICA_LINK', 'the other replica answered with a line that is not JSON', { cause: err });
    }
  }

  #session(url: string): Promise<Session> {
    let s = this.#sessions.get(url);
    if (s === undefined) {
      s = this.#dial(url);
      this.#sessions.set(url, s);
      const forget = (): void => {
        if (this.#sessions.get(url) === s) this.#sessions.delete(url);
      };
      s.then((session) => session.once('close', forget), forget);
    }
    return s;
  }

  async #dial(url: string): Promise<Session> {
    const target = new URL(REPLICA_PATH, url);
    target.protocol = target.protocol === 'http:' ? 'ws:' : 'wss:';
    const timeoutMs = this.#o.dialTimeoutMs ?? 5_000;
    const ws = await openWebSocket<Error>(
      () =>
        new WebSocket(target, [REPLICA_SUBPROTOCOL], {
          ...tunnelWebSocketClientOptions(target),
          headers: { authorization: `Bearer ${this.#o.secret}` },
          handshakeTimeout: timeoutMs,
          followRedirects: false,
          ...(this.#o.ca === undefined ? {} : { ca: this.#o.ca }),
        }),
      {
        signal: this.#abort.signal,
        deadline: { ms: timeoutMs + 100, error: () => new Error(`dial timed out after ${timeoutMs} ms`) },
        aborted: () => new Error('closing'),
        failed: (err) => err,
        refused: (res) => new Error(`upgrade answered with HTTP ${res.statusCode ?? 0}`),
      },
    );
    const session = createSession(websocketDuplex(ws), { ...this.#o.mux, client: true });
    session.on('error', (err: Error) => this.#o.logger.debug({ event: 'replica_link_error', url, err }, 'replica link session error'));
    ws.once('close', () => {
      if (!session.isClosed) session.destroy();
    });
    this.#o.logger.info({ event: 'replica_link_open', url }, 'replica link open');
    return session;
  }

  /** Ends every link (their streams are reset) and stops dialing. */
  async close(): Promise<void> {
    this.#abort.abort();
    const sessions = await Promise.allSettled([...this.#sessions.values()]);
    for (const s of sessions) if (s.status === 'fulfilled') s.value.destroy();
    this.#sessions.clear();
  }
}
