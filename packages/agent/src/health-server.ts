import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { nodeHttp } from '@pipeops/tunnel-protocol';

/** Result of a readiness evaluation. */
export type Readiness = { ready: true } | { ready: false; reason: string };

export interface HealthServerOptions {
  host: string;
  /** 0 = ephemeral. */
  port: number;
  /** Evaluated on every GET /ready. */
  readiness: () => Readiness;
  /** Evaluated on every GET /health; default always healthy. */
  health?: () => boolean;
  registry: Registry;
  logger: Logger;
}

/**
 * The agent's local listener: `GET /health`, `GET /ready`, `GET /metrics`;
 * everything else 404, non-GET/HEAD 405.
 */
export class HealthServer {
  readonly #o: HealthServerOptions;
  readonly #server: Server;

  constructor(options: HealthServerOptions) {
    this.#o = options;
    this.#server = nodeHttp.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        this.#o.logger.error({ err }, 'health request failed');
        if (!res.headersSent) json(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    });
    // A scraper that holds a keep-alive connection must not delay close().
    this.#server.keepAliveTimeout = 5_000;
  }

  /** Listening address, once started. */
  get address(): AddressInfo | undefined {
    const a = this.#server.address();
    return a !== null && typeof a === 'object' ? a : undefined;
  }

  async start(): Promise<AddressInfo> {
    this.#server.listen(this.#o.port, this.#o.host);
    await once(this.#server, 'listening');
    const a = this.address;
    if (a === undefined) throw new Error('health server has no address');
    return a;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = once(this.#server, 'close');
    this.#server.close();
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      json(res, 405, { error: 'method not allowed' });
      return;
    }
    switch (path) {
      case '/health':
      case '/healthz': {
        const ok = this.#o.health?.() ?? true;
        json(res, ok ? 200 : 503, { status: ok ? 'ok' : 'unhealthy' });
        return;
      }
      case '/ready':
      case '/readyz': {
        const r = this.#o.readiness();
        json(res, r.ready ? 200 : 503, r);
        return;
      }
      case '/metrics': {
        const body = await this.#o.registry.metrics();
        res.writeHead(200, { 'content-type': this.#o.registry.contentType });
        res.end(body);
        return;
      }
      default:
        json(res, 404, { error: 'not found' });
    }
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
