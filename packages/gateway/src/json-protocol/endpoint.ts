import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { refuseUpgrade } from '../http-util.ts';
import { resolveJsonProtocolDeps, type JsonProtocolDeps } from './config.ts';
import { JsonConnection, type RunnerContext } from './connection.ts';

/** Counters of a {@link JsonProtocolEndpoint}, for metrics and tests. */
export interface JsonProtocolStats {
  /** Runner sockets open. */
  sockets: number;
  /** Requests in flight, all sockets. */
  inFlight: number;
  /** Requests whose response reading is paused because their socket is congested. */
  paused: number;
  /** Bytes queued towards runners, all sockets. */
  bufferedBytes: number;
}

/** The JSON message protocol endpoint the gateway mounts at `GET /ws/k8s?cluster=C`. */
export interface JsonProtocolEndpoint {
  /** Completes the WebSocket handshake for an authenticated runner (the gateway has checked the token and the cluster). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: RunnerContext): void;
  /** Cancels every request, closes every socket with 1001; later upgrades get 503. Idempotent. */
  close(): Promise<void>;
  stats(): JsonProtocolStats;
}

/**
 * Creates the endpoint: a `ws` server (noServer, no compression, `maxPayload`
 * = `maxMessageBytes`) whose sockets speak the original VM agent's runner
 * protocol; each request becomes one `http` stream to the cluster's agent.
 * Throws TunnelError `PT_ERR_GATEWAY_CONFIG` for an invalid limit.
 */
export function createJsonProtocolEndpoint(deps: JsonProtocolDeps): JsonProtocolEndpoint {
  const d = resolveJsonProtocolDeps(deps);
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: d.maxMessageBytes, clientTracking: false });
  const connections = new Set<JsonConnection>();
  let closing: Promise<void> | undefined;

  return {
    handleUpgrade(req, socket, head, ctx) {
      if (closing !== undefined) {
        refuseUpgrade(socket, 503, 'PT_ERR_GATEWAY_CLOSED', 'gateway is shutting down');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const conn = new JsonConnection(ws, ctx, d);
        connections.add(conn);
        void conn.closed.then(() => connections.delete(conn));
        if (closing !== undefined) void conn.close(1001, 'gateway shutting down', d.closeTimeoutMs);
      });
    },
    close() {
      closing ??= (async () => {
        await Promise.all([...connections].map((c) => c.close(1001, 'gateway shutting down', d.closeTimeoutMs)));
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      })();
      return closing;
    },
    stats() {
      const s: JsonProtocolStats = { sockets: connections.size, inFlight: 0, paused: 0, bufferedBytes: 0 };
      for (const c of connections) {
        s.inFlight += c.inFlight;
        s.paused += c.paused;
        s.bufferedBytes += c.bufferedAmount;
      }
      return s;
    },
  };
}
