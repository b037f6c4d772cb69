import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { createSession, GoAwayCode, type Session, type SessionOptions, type Stream } from '@pipeops/tunnel-mux';
import { SUBPROTOCOL, websocketDuplex } from '@pipeops/tunnel-protocol';
import { refuseWithStatus } from './kube-status.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { RunnerForwarder } from './runner-forwarder.ts';
import type { RunnerLimiter, RunnerLimits } from './runner-limits.ts';
import type { TokenStore } from './tokens.ts';

/** WebSocket close code and reason a runner gets when a tokens reload revoked its token or its access to the cluster. */
export const RUNNER_REVOKED_CLOSE = { code: 1008, reason: 'runner token revoked' } as const;
/** How long a revoked runner's WebSocket gets for the close handshake before it is terminated (ms). */
const REVOKE_TERMINATE_MS = 1_000;

/** What the runners' mux endpoint needs from the gateway. */
export interface RunnerEndpointDeps {
  logger: Logger;
  metrics: GatewayMetrics;
  forwarder: RunnerForwarder;
  /** Largest WebSocket message accepted from a runner (bytes). */
  maxPayloadBytes: number;
  /** Mux options of runner sessions (`client` is always false: the runner dials). */
  mux: Partial<SessionOptions> | undefined;
  /** Paces a runner's uploads by its byte rate. */
  limiter: RunnerLimiter;
}

/** The authenticated runner a session belongs to. */
export interface RunnerSessionIdentity {
  runnerId: string;
  cluster: string;
  clientId: string | undefined;
  limits: Readonly<RunnerLimits>;
}

/**
 * Streams a runner session may have open beyond the runner's `maxStreams`
 * before the mux resets new ones outright: within the slack a new stream gets
 * the limiter's 429 `Status` (readable, with Retry-After); beyond it, SYNs
 * cost the gateway nothing but an RST.
 */
const STREAM_SLACK = 64;

/** Re-checks, against a reloaded token set, that the runner's token still exists and still reaches its cluster. */
export type RunnerStillAllowed = (tokens: TokenStore) => boolean;

interface OpenSession {
  ws: WebSocket;
  who: RunnerSessionIdentity;
  allowed: RunnerStillAllowed;
  log: Logger;
}

/**
 * `GET /ws/runner`: after the routes authenticated the runner, upgrades to a
 * WebSocket carrying yamux (the gateway is the mux *server*). Every stream
 * the runner opens carries one HTTP/1.1 request, relayed by
 * {@link RunnerForwarder.stream}: the gateway reads the request and response
 * heads and splices the rest (see runner-splice.ts). A runner session
 * is independent of agents and of other runners: its failure closes only it.
 */
export class RunnerEndpoint {
  readonly #deps: RunnerEndpointDeps;
  readonly #wss: WebSocketServer;
  readonly #sessions = new Map<Session, OpenSession>();
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

  /**
   * Upgrades an authenticated runner (auth and subprotocol already checked by
   * the routes). `allowed` is re-run by {@link RunnerEndpoint.revoke} after a
   * tokens reload.
   */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer, who: RunnerSessionIdentity, allowed: RunnerStillAllowed): void {
    if (this.#closed) {
      refuseWithStatus(socket, 503, 'the gateway is shutting down');
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onRunner(ws, who, allowed));
  }

  /**
   * After a tokens reload: cuts every session whose runner token is gone or
   * no longer reaches the session's cluster — in-flight streams are reset and
   * the WebSocket closes with {@link RUNNER_REVOKED_CLOSE} (terminated after
   * 1 s without a close handshake). Returns how many sessions were cut.
   */
  revoke(tokens: TokenStore): number {
    let cut = 0;
    for (const [session, open] of this.#sessions) {
      if (open.allowed(tokens)) continue;
      cut++;
      open.log.warn({ event: 'runner_revoked', code: 'PT_ERR_AUTH_REJECTED' }, 'runner token revoked; closing its session');
      // Close frame first, so the runner reads why; destroying the session then resets its streams (and their agent streams) now.
      if (open.ws.readyState === open.ws.OPEN) open.ws.close(RUNNER_REVOKED_CLOSE.code, RUNNER_REVOKED_CLOSE.reason);
      session.destroy();
      setTimeout(() => open.ws.terminate(), REVOKE_TERMINATE_MS).unref();
    }
    return cut;
  }

  #onRunner(ws: WebSocket, who: RunnerSessionIdentity, allowed: RunnerStillAllowed): void {
    const { metrics, forwarder } = this.#deps;
    const log = this.#deps.logger.child({ runnerId: who.runnerId, cluster: who.cluster, clientId: who.clientId });
    const cap = who.limits.maxStreams > 0 ? { maxConcurrentStreams: who.limits.maxStreams + STREAM_SLACK } : {};
    const session = createSession(websocketDuplex(ws), { ...this.#deps.mux, ...cap, client: false });
    const pacer = this.#deps.limiter.pacer(who.runnerId, who.limits);
    session.on('stream', (stream: Stream) =>
      forwarder.stream(stream.setGrantPacer(pacer), { runnerId: who.runnerId, cluster: who.cluster, limits: who.limits }),
    );
    this.#sessions.set(session, { ws, who, allowed, log });
    metrics.runnerSessions.inc();
    log.info({ event: 'runner_connected' }, 'runner session opened');
    session.once('close', () => {
      this.#sessions.delete(session);
      metrics.runnerSessions.dec();
      const err = session.closeError as (Error & { code?: string }) | undefined;
      log.info({ event: 'runner_disconnected', code: err?.code, stats: session.stats }, 'runner session closed');
      if (ws.readyState === ws.OPEN) ws.close(1000);
    });
  }

  /**
   * Sends GoAway on every runner session: tunnel-client dials a new session
   * (through the load balancer, to another replica) while the streams in
   * flight finish on this one. A fleet replica's first step out.
   */
  goAway(): void {
    // Streams the runner opens before it sees the GoAway are still served (a refused one would fail its request).
    for (const session of this.#sessions.keys()) if (!session.isClosed && !session.localGoAway) session.goAway(GoAwayCode.normal, { acceptInFlight: true });
  }

  /** Closes every runner session (GoAway, then at most `deadlineMs` for their streams) and refuses new ones. */
  async close(deadlineMs: number): Promise<void> {
    this.#closed = true;
    await Promise.all(
      [...this.#sessions.entries()].map(async ([session, { ws }]) => {
        await session.close(deadlineMs).catch(() => {});
        ws.terminate();
      }),
    );
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}
