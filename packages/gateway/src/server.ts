import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { TUNNEL_PATH } from '@pipeops/tunnel-protocol';
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
}

/**
 * The gateway's server: HTTPS when `tls` is given, plain HTTP otherwise
 * (tests and development only). Unknown paths get a JSON 404; an upgrade no
 * route takes is answered 404 on the raw socket. Absolute-form targets and
 * CONNECT get a 400 Kubernetes `Status` (the gateway is no forward proxy).
 */
export function createServer(tls: { cert: string | Buffer; key: string | Buffer } | undefined, routes: ServerRoutes, logger: Logger): http.Server | https.Server {
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const path = pathOf(req);
    if (!path.startsWith('/')) {
      // Absolute-form (`GET http://host/…`) or asterisk-form: the gateway is no forward proxy.
      sendStatus(res, 400, 'only origin-form request targets (/path?query) are accepted');
      return;
    }
    try {
      if (routes.request(req, res, path)) return;
    } catch (err) {
      logger.error({ event: 'request_failed', err, method: req.method, path }, 'request handler failed');
      if (!res.headersSent) sendJson(res, 500, errorBody('PT_ERR_INTERNAL', 'internal error'));
      else res.destroy();
      return;
    }
    sendJson(res, 404, errorBody('PT_ERR_NOT_FOUND', `no route for ${req.method ?? 'GET'} ${path}`));
  };
  const server = tls
    ? https.createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, onRequest)
    : http.createServer(onRequest);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => logger.debug({ event: 'upgrade_socket_error', err }, 'socket error during upgrade'));
    const path = pathOf(req);
    if (!path.startsWith('/')) { refuseWithStatus(socket, 400, 'only origin-form request targets (/path?query) are accepted'); return; }
    if (path === TUNNEL_PATH) { routes.tunnelUpgrade(req, socket, head); return; }
    try {
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
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    logger.debug({ event: 'client_error', code: err.code }, 'malformed client request');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => {
    logger.debug({ event: 'tls_client_error', code: err.code }, 'TLS handshake with a client failed');
  });
  return server;
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
