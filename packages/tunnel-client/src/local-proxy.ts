import { once } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { answerClientError, kubeStatusJson, nodeHttp, relayRequest, relayUpgrade, type RelayOptions, type RelayResult } from '@pipeops/tunnel-protocol';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { relayThroughDispatcher } from './internal/dispatch-relay.ts';
import { planResume, RESUME_HEADER, resumeOff } from './resume/resume-plan.ts';

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

/** The dispatcher that resumes WATCH and `logs -f` streams, and the origin it serves. */
export interface ResumingDispatcher {
  dispatcher: Dispatcher;
  origin: string;
}

/** True when `req` goes through the resuming dispatcher: a WATCH or a `logs -f` with timestamps, not opted out. */
function resumable(req: IncomingMessage): boolean {
  if (req.method !== 'GET' || req.headers.upgrade !== undefined) return false;
  if (resumeOff(req.headers[RESUME_HEADER] as string | undefined)) return false;
  if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) return false;
  return planResume('GET', req.url ?? '/', req.headers.accept) !== undefined;
}

/**
 * A plain-HTTP server on the runner's machine that forwards every request —
 * upgrades (exec, attach, port-forward; WebSocket and SPDY) included — through
 * the tunnel, one stream each, with `relayRequest` / `relayUpgrade`. What
 * `pipeops-tunnel proxy` serves, like `kubectl proxy`. With `resuming`, a
 * WATCH or a `logs -f` with timestamps goes through that dispatcher instead,
 * and so survives a tunnel drop (`x-pipeops-resume: off` opts out; the header
 * is never sent upstream).
 */
export async function startLocalProxy(open: () => Promise<Duplex>, options: ListenOptions, logger: Logger, resuming?: ResumingDispatcher): Promise<LocalProxy> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<Socket | Duplex>();
  let seq = 0;
  const relayOptions = (req: IncomingMessage): RelayOptions => ({ path: req.url ?? '/', errorResponse: statusBody, dropHeaders: [RESUME_HEADER] });
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
  const server: Server = nodeHttp.createServer((req: IncomingMessage, res: ServerResponse) => {
    const id = ++seq;
    const startedAt = Date.now();
    const relayed =
      resuming !== undefined && resumable(req)
        ? relayThroughDispatcher(req, res, resuming.dispatcher, resuming.origin, req.url ?? '/')
        : relayRequest(req, res, open, relayOptions(req));
    void relayed.then((r) => logResult(req, id, startedAt, r));
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
  // A malformed request head gets Node's own answer (400, 431…) rather than a bare close: kubectl then says why.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const status = answerClientError(err, socket);
    logger.debug({ event: 'client_error', code: err.code, status }, 'malformed client request; closing');
  });
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
