import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { AgentHeaders, SUBPROTOCOL, type ConnectFailureReason } from '@pipeops/tunnel-protocol';
import { refuseUpgrade } from './http-util.ts';
import type { GatewayMetrics } from './metrics.ts';
import { bearerToken, type AgentIdentity, type TokenStore } from './tokens.ts';

/** What the agents' endpoint needs from the gateway. */
export interface TunnelEndpointDeps {
  logger: Logger;
  metrics: GatewayMetrics;
  maxPayloadBytes: number;
  tokens: () => TokenStore;
  draining: () => boolean;
  /** Whether a session holds `cluster` (here or on another replica of the fleet). */
  held: (cluster: string) => Promise<boolean>;
  /** Called with each authenticated, upgraded agent WebSocket. */
  onAgent: (ws: WebSocket, identity: AgentIdentity, remoteAddress: string | undefined) => void;
}

/** Longest `x-pipeops-replaced-by` value looked at (session ids are UUIDs). */
const MAX_SESSION_ID_LENGTH = 128;

/**
 * `GET /v1/tunnel`: authenticates the agent *before* the WebSocket
 * handshake (401/403/400/409/503 answered on the raw socket, no upgrade),
 * then upgrades with `ws` (no compression) and hands the socket on.
 *
 * One session per cluster, and the newer agent wins: an agent whose session
 * a newer one replaced dials with `x-pipeops-replaced-by: <that sessionId>`
 * and is refused with 409 `PT_ERR_CLUSTER_HELD` while any session holds the
 * cluster, so agents of one cluster do not take it from each other in turn
 * (not even three, whose replacers replace each other); a replaced one takes
 * over at its first dial after the cluster is free.
 */
export class TunnelEndpoint {
  readonly wss: WebSocketServer;
  readonly #deps: TunnelEndpointDeps;

  constructor(deps: TunnelEndpointDeps) {
    this.#deps = deps;
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: deps.maxPayloadBytes,
      clientTracking: true,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
  }

  /** Never throws and never rejects: a failure of our own closes this agent's socket, logged, and the gateway goes on. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#handleUpgrade(req, socket, head).catch((err: unknown) => {
      this.#deps.logger.error({ event: 'agent_upgrade_failed', err, remoteAddress: req.socket.remoteAddress }, 'agent upgrade failed; its socket is closed');
      socket.destroy();
    });
  }

  async #handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { logger, metrics } = this.#deps;
    const remoteAddress = req.socket.remoteAddress;
    const log = logger.child({ remoteAddress });
    const refuse = (status: number, code: string, message: string, reason: ConnectFailureReason): void => {
      // Never log the Authorization header or the token: only the outcome.
      // A standing-by agent dials every reconnect.max_interval: its refusal is expected, not a warning.
      log[status === 409 ? 'info' : 'warn']({ event: 'agent_refused', status, code }, message);
      metrics.connectFailures.inc({ reason });
      refuseUpgrade(socket, status, code, message, status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {});
    };
    if (req.method !== 'GET') {
      refuse(405, 'PT_ERR_BAD_REQUEST', 'the tunnel endpoint takes GET', 'other');
      return;
    }
    if (this.#deps.draining()) {
      refuse(503, 'PT_ERR_DRAINING', 'gateway is draining; dial again later', 'other');
      return;
    }
    const identity = this.#deps.tokens().verifyAgent(bearerToken(req.headers.authorization));
    if (identity === undefined) {
      refuse(401, 'PT_ERR_AUTH_REJECTED', 'agent token missing or rejected', 'auth');
      return;
    }
    const claimed = req.headers[AgentHeaders.cluster];
    if (typeof claimed === 'string' && claimed !== '' && claimed !== identity.cluster) {
      refuse(403, 'PT_ERR_FORBIDDEN', 'the agent token does not belong to the cluster in x-pipeops-cluster', 'auth');
      return;
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!offered.includes(SUBPROTOCOL)) {
      refuse(400, 'PT_ERR_BAD_REQUEST', `subprotocol ${SUBPROTOCOL} required`, 'handshake');
      return;
    }
    const replacedBy = req.headers[AgentHeaders.replacedBy];
    if (typeof replacedBy === 'string' && replacedBy !== '' && replacedBy.length <= MAX_SESSION_ID_LENGTH) {
      // The socket has no 'error' listener while the answer is looked up (the HTTP server removed its own).
      const onError = (): void => {
        socket.destroy();
      };
      socket.on('error', onError);
      const held = await this.#deps.held(identity.cluster).catch(() => false);
      socket.off('error', onError);
      if (socket.destroyed) return;
      if (held) {
        log.debug({ event: 'agent_standby', replacedBy }, 'a replaced agent dialed while the cluster is held');
        refuse(409, 'PT_ERR_CLUSTER_HELD', 'a newer session holds the cluster; this replaced agent stands by', 'held');
        return;
      }
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.#deps.onAgent(ws, identity, remoteAddress);
    });
  }

  /** Terminates every agent socket still open and closes the WebSocket server. */
  close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    return new Promise((resolve) => this.wss.close(() => resolve()));
  }
}
