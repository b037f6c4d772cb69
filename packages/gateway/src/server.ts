import https from 'node:https';
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { answerClientError, nodeHttp, readOnWhileFlushing, TUNNEL_PATH } from '@pipeops/tunnel-protocol';
import { errorBody, refuseUpgrade, sendJson } from './http-util.ts';
import { refuseWithStatus, sendStatus } from './kube-status.ts';

/** Routes of the gateway's HTTP(S) server. */
export interface ServerRoutes {
  /** Plain requests; return false when not handled (→ 404). */
  request: (req: IncomingMessage, res: ServerResponse, path: string) => boolean;
  /** Upgrade requests on {@link TUNNEL_PATH}. */
  tunnelUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Other upgrade requests (runner routes); return false when not handled (→ 404). */
  upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer, path: string) => boolean;
  /** CONNECT requests (never relayed); default: 400 `Status`. */
  connect?: (req: IncomingMessage, socket: Duplex) => void;
  /**
   * Asked first, before any path is looked at: requests and upgrades on a
   * connection whose TLS server name is a per-cluster address belong to
   * that cluster whatever their path (`/v1/tunnel` and `/health` included).
   * Return false for other connections.
   */
  addressed?: {
    request: (req: IncomingMessage, res: ServerResponse) => boolean;
    upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;
  };
}

/**
 * What a connection may cost before it has said who it is. Durations in
 * milliseconds; see the `GatewayOptions` fields of the same names.
 */
export interface ServerLimits {
  /** TCP connection → end of the TLS handshake. */
  tlsHandshakeTimeoutMs: number;
  /** Connection (after TLS), or a kept-alive request's first byte → complete request head. */
  requestHeadTimeoutMs: number;
  /** Open connections; one more is closed at once. */
  maxConnections: number;
}

/**
 * Node's own whole-request limit (`requestTimeout`, 300 s by default) is
 * kept: it ends a request *body* trickled forever. It counts only until the
 * request has been received, so a WATCH or log follow (a long response) and
 * an upgraded exec (no longer HTTP) are never cut by it.
 */
const REQUEST_TIMEOUT_MS = 300_000;
/** Drop warnings are logged at most this often, with the count since the last one (ms). */
const DROP_LOG_INTERVAL_MS = 10_000;

/**
 * The gateway's server: HTTPS when `tls` is given, plain HTTP otherwise
 * (tests and development only). Unknown paths get a JSON 404; an upgrade no
 * route takes is answered 404 on the raw socket. Absolute-form targets and
 * CONNECT get a 400 Kubernetes `Status` (the gateway is no forward proxy).
 *
 * Unauthenticated connections are bounded ({@link ServerLimits}): a TLS
 * handshake not finished within `tlsHandshakeTimeoutMs` and a request head
 * not complete within `requestHeadTimeoutMs` (answered 408) end the
 * connection, and beyond `maxConnections` new connections are closed as
 * they arrive. Every client error ends with the socket destroyed.
 */
export function createServer(
  tls: { cert: string | Buffer; key: string | Buffer } | undefined,
  routes: ServerRoutes,
  logger: Logger,
  limits: ServerLimits,
): Server | https.Server {
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // A request that follows a large answer still flushing must not be paused mid-body (HPE_PAUSED: see the protocol's http-server-flush-pause.ts).
    readOnWhileFlushing(req, res);
    const path = pathOf(req);
    if (!path.startsWith('/')) {
      // Absolute-form (`GET http://host/…`) or asterisk-form: the gateway is no forward proxy.
      sendStatus(res, 400, 'only origin-form request targets (/path?query) are accepted');
      return;
    }
    try {
      if (routes.addressed?.request(req, res) === true) return;
      if (routes.request(req, res, path)) return;
    } catch (err) {
      logger.error({ event: 'request_failed', err, method: req.method, path }, 'request handler failed');
      if (!res.headersSent) sendJson(res, 500, errorBody('PT_ERR_INTERNAL', 'internal error'));
      else res.destroy();
      return;
    }
    sendJson(res, 404, errorBody('PT_ERR_NOT_FOUND', `no route for ${req.method ?? 'GET'} ${path}`));
  };
  const httpOptions: ServerOptions = {
    headersTimeout: limits.requestHeadTimeoutMs,
    requestTimeout: Math.max(REQUEST_TIMEOUT_MS, limits.requestHeadTimeoutMs),
    // How often Node looks for expired heads: the deadline holds to within a quarter of itself (at most 1 s late).
    connectionsCheckingInterval: Math.min(1_000, Math.max(10, Math.floor(limits.requestHeadTimeoutMs / 4))),
  };
  const server = tls
    ? https.createServer(
        {
          cert: tls.cert,
          key: tls.key,
          minVersion: 'TLSv1.2',
          // Counted from the TCP connection; bytes trickled during the handshake do not extend it (a
          // regression test holds Node to that). It ends in 'tlsClientError' below.
          handshakeTimeout: limits.tlsHandshakeTimeoutMs,
          ...httpOptions,
        },
        onRequest,
      )
    : nodeHttp.createServer(httpOptions, onRequest);
  server.maxConnections = limits.maxConnections;
  let dropped = 0;
  let dropLoggedAt = -Infinity;
  server.on('drop', () => {
    dropped++;
    const now = performance.now();
    if (now - dropLoggedAt < DROP_LOG_INTERVAL_MS) return;
    logger.warn(
      { event: 'connection_dropped', reason: 'max_connections', maxConnections: limits.maxConnections, dropped },
      'connection limit reached; new connections are closed',
    );
    dropLoggedAt = now;
    dropped = 0;
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => logger.debug({ event: 'upgrade_socket_error', err }, 'socket error during upgrade'));
    const path = pathOf(req);
    if (!path.startsWith('/')) {
      refuseWithStatus(socket, 400, 'only origin-form request targets (/path?query) are accepted');
      return;
    }
    try {
      if (routes.addressed?.upgrade(req, socket, head) === true) return;
      if (path === TUNNEL_PATH) {
        routes.tunnelUpgrade(req, socket, head);
        return;
      }
      if (routes.upgrade?.(req, socket, head, path) === true) return;
    } catch (err) {
      logger.error({ event: 'upgrade_failed', err, method: req.method, path }, 'upgrade handler failed');
      refuseUpgrade(socket, 500, 'PT_ERR_INTERNAL', 'internal error');
      return;
    }
    refuseUpgrade(socket, 404, 'PT_ERR_NOT_FOUND', `no upgrade endpoint at ${path}`);
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    if (routes.connect) routes.connect(req, socket);
    else refuseWithStatus(socket, 400, 'CONNECT is not supported by the gateway');
  });
  // With a 'clientError' listener Node leaves the socket to us: answer (unless a response is under way) and destroy it.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const status = answerClientError(err, socket);
    logger.debug(
      { event: 'client_error', code: err.code, status },
      status === 408 ? 'request head not received in time; closing' : 'malformed client request; closing',
    );
  });
  // Likewise a 'tlsClientError' listener suppresses Node's destroy of the failed socket.
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    logger.debug({ event: 'tls_client_error', code: err.code }, 'TLS handshake with a client failed; closing');
    socket.destroy();
  });
  return server;
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
