import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { createSession, type Session, type SessionOptions } from '@pipeops/tunnel-mux';
import { SUBPROTOCOL, serveHttpOverStream, websocketDuplex } from '@pipeops/tunnel-protocol';
import { refuseWithStatus } from './kube-status.ts';
import type { GatewayMetrics } from './metrics.ts';
import { requestIdFor, targetProblem, type RunnerForwarder, type RunnerRequestContext } from './runner-forwarder.ts';

/** What the runners' mux endpoint needs from the gateway. */
export interface RunnerEndpointDeps {
  logger: Logger;
  metrics: GatewayMetrics;
  forwarder: RunnerForwarder;
  /** Largest WebSocket message accepted from a runner (bytes). */
  maxPayloadBytes: number;
  /** Mux options of runner sessions (`client` is always false: the runner dials). */
  mux: Partial<SessionOptions> | undefined;
}

/** The authenticated runner a session belongs to. */
export interface RunnerSessionIdentity { runnerId: string; cluster: string; clientId: string | undefined }

/**
 * `GET /ws/runner`: after the routes authenticated the runner, upgrades to a
 * WebSocket carrying yamux (the gateway is the mux *server*). Every stream
 * the runner opens carries one HTTP/1.1 request, served by a per-session
 * `http.Server` (no listening socket) whose handlers call the same
 * {@link RunnerForwarder} as `/k8s/clusters/{cluster}/…`. A runner session
 * is independent of agents and of other runners: its failure closes only it.
 */
export class RunnerEndpoint {
  readonly #deps: RunnerEndpointDeps;
  readonly #wss: WebSocketServer;
  readonly #sessions = new Map<Session, WebSocket>();
  #closed = false;

  constructor(deps: RunnerEndpointDeps) {
    this.#deps = deps;
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: deps.maxPayloadBytes,
      clientTracking: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
  }

  /** Open runner sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Upgrades an authenticated runner (auth and subprotocol already checked by the routes). */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, who: RunnerSessionIdentity): void {
    if (this.#closed) { refuseWithStatus(socket, 503, 'the gateway is shutting down'); return; }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onRunner(ws, who));
  }

  #onRunner(ws: WebSocket, who: RunnerSessionIdentity): void {
    const { metrics, forwarder } = this.#deps;
    const log = this.#deps.logger.child({ runnerId: who.runnerId, cluster: who.cluster, clientId: who.clientId });
    const session = createSession(websocketDuplex(ws), { ...this.#deps.mux, client: false });
    const ctxOf = (req: IncomingMessage): RunnerRequestContext => ({
      runnerId: who.runnerId, cluster: who.cluster, path: req.url ?? '/', route: 'ws-runner', requestId: requestIdFor(req),
    });
    const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
      const ctx = ctxOf(req);
      const problem = targetProblem(req.method, ctx.path);
      if (problem !== undefined) { forwarder.refuse(req, res, 400, problem, ctx); return; }
      forwarder.request(req, res, ctx);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const ctx = ctxOf(req);
      const problem = targetProblem(req.method, ctx.path);
      if (problem !== undefined) { forwarder.refuse(req, socket, 400, problem, ctx); return; }
      forwarder.upgrade(req, socket, head, ctx);
    });
    server.on('connect', (req: IncomingMessage, socket: Duplex) => {
      forwarder.refuse(req, socket, 400, 'CONNECT is not supported by the gateway', { ...ctxOf(req), path: '' });
    });
    server.on('clientError', (_err: Error, socket: Duplex) => {
      // A malformed request on one stream: answer it and reset that stream only.
      refuseWithStatus(socket, 400, 'malformed HTTP request');
    });
    session.on('stream', (stream) => serveHttpOverStream(server, stream));
    this.#sessions.set(session, ws);
    metrics.runnerSessions.inc();
    log.info({ event: 'runner_connected' }, 'runner session opened');
    session.once('close', () => {
      this.#sessions.delete(session);
      metrics.runnerSessions.dec();
      server.close();
      const err = session.closeError as (Error & { code?: string }) | undefined;
      log.info({ event: 'runner_disconnected', code: err?.code, stats: session.stats }, 'runner session closed');
      if (ws.readyState === ws.OPEN) ws.close(1000);
    });
  }

  /** Closes every runner session (GoAway, then at most `deadlineMs` for their streams) and refuses new ones. */
  async close(deadlineMs: number): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#sessions.entries()].map(async ([session, ws]) => {
      await session.close(deadlineMs).catch(() => {});
      ws.terminate();
    }));
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}
