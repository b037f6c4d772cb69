import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { kubeStatusJson, relayRequest, relayUpgrade, type RelayOptions, type RelayResult } from '@pipeops/tunnel-protocol';
import type { Logger } from 'pino';

/** Options of `tunnel.listen()`. */
export interface ListenOptions {
  /** Interface to listen on. Default `127.0.0.1` (the proxy carries the runner's access: keep it local). */
  host?: string;
  /** Port; 0 = ephemeral. Default 0. */
  port?: number;
}

/** A running local proxy. */
export interface LocalProxy {
  /** `http://host:port`, e.g. for a kubeconfig's `server` or `kubectl --server`. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** Stops listening and ends open connections (upgraded ones included). Idempotent. */
  close(): Promise<void>;
}

/** Kubernetes `Status` body for the proxy's own errors (tunnel down, …), so kubectl prints them like API errors. */
function statusBody(status: number, reason: string, message: string): { contentType: string; body: string } {
  return {
    contentType: 'application/json',
    body: kubeStatusJson(status, message, reason),
  };
}

/**
 * A plain-HTTP server on the runner's machine that forwards every request —
 * upgrades (exec, attach, port-forward; WebSocket and SPDY) included — through
 * the tunnel, one stream each, with `relayRequest` / `relayUpgrade`. What
 * `pipeops-tunnel proxy` serves, like `kubectl proxy`.
 */
export async function startLocalProxy(open: () => Promise<Duplex>, options: ListenOptions, logger: Logger): Promise<LocalProxy> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<Socket | Duplex>();
  let seq = 0;
  const relayOptions = (req: IncomingMessage): RelayOptions => ({ path: req.url ?? '/', errorResponse: statusBody });
  const logResult = (req: IncomingMessage, id: number, startedAt: number, r: RelayResult): void => {
    const record = {
      event: 'proxy_request',
      requestId: id,
      method: req.method,
      path: (req.url ?? '/').split('?')[0],
      status: r.status,
      bytes: r.bytesOut,
      bytesIn: r.bytesIn,
      upgraded: r.upgraded,
      ms: Date.now() - startedAt,
      ...(r.error !== undefined ? { error: r.error.message } : {}),
    };
    if (r.status >= 500 || r.status === 0) logger.warn(record, 'proxy request');
    else logger.debug(record, 'proxy request');
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const id = ++seq;
    const startedAt = Date.now();
    void relayRequest(req, res, open, relayOptions(req)).then((r) => logResult(req, id, startedAt, r));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const id = ++seq;
    const startedAt = Date.now();
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    void relayUpgrade(req, socket, head, open, relayOptions(req)).then((r) => logResult(req, id, startedAt, r));
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket: Duplex) => socket.destroy());
  server.listen(options.port ?? 0, host);
  await once(server, 'listening');
  const addr = server.address() as AddressInfo;
  const urlHost = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  const url = `http://${urlHost}:${addr.port}`;
  logger.info({ event: 'proxy_listening', url }, `proxy listening on ${url}`);
  let closing: Promise<void> | undefined;
  return {
    url,
    port: addr.port,
    host: addr.address,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
