import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { KubeTlsOptions } from './credentials.ts';

/** Connection settings of the API-server pool. Durations in milliseconds. */
export interface KubeUpstreamOptions {
  /** Max connections to the API server; `undefined` = unlimited (every WATCH holds one). */
  connections?: number;
  /** TCP + TLS connect timeout. Default `10_000`. */
  connectTimeoutMs?: number;
  /** Time to the response head. Default `120_000`; the gateway's own head timeout is usually shorter. */
  headersTimeoutMs?: number;
  /** Idle keep-alive connection lifetime. Default `30_000`. */
  keepAliveTimeoutMs?: number;
}

export const defaultKubeUpstreamOptions = {
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 120_000,
  keepAliveTimeoutMs: 30_000,
} as const satisfies KubeUpstreamOptions;

/**
 * undici pools bound to the one API-server origin. A `Pool` can only ever
 * dial its origin, whatever path, method or Host a request carries, so no
 * other server is reachable through it. Connections are reused; one pool
 * per distinct TLS client identity (an exec plugin may hand out a new client
 * certificate), the previous one closed gracefully (in-flight requests finish).
 */
export class KubeUpstream {
  readonly origin: URL;
  readonly #o: KubeUpstreamOptions;
  #current: { key: string; pool: Pool } | undefined;
  #closed = false;

  constructor(origin: URL, options: KubeUpstreamOptions = {}) {
    this.origin = new URL(origin.origin);
    this.#o = options;
  }

  /** The pool for this TLS identity. */
  dispatcher(tls: KubeTlsOptions): Dispatcher {
    if (this.#closed) throw new Error('upstream closed');
    const key = tlsKey(tls);
    if (this.#current?.key === key) return this.#current.pool;
    const previous = this.#current?.pool;
    const o = this.#o;
    const pool = new Pool(this.origin, {
      ...(o.connections !== undefined ? { connections: o.connections } : {}),
      headersTimeout: o.headersTimeoutMs ?? defaultKubeUpstreamOptions.headersTimeoutMs,
      // WATCH and logs -f may be silent for a long time: never time a body out.
      bodyTimeout: 0,
      keepAliveTimeout: o.keepAliveTimeoutMs ?? defaultKubeUpstreamOptions.keepAliveTimeoutMs,
      // HTTP/1.1 only. kube-apiserver offers h2 and undici 8 would take it,
      // but the relay is HTTP/1.1 end to end: raw header order, trailers and
      // 101 upgrades (exec, attach, port-forward) have no h2 equivalent here.
      allowH2: false,
      connect: this.origin.protocol === 'https:'
        ? { ...tlsConnect(tls), timeout: o.connectTimeoutMs ?? defaultKubeUpstreamOptions.connectTimeoutMs }
        : { timeout: o.connectTimeoutMs ?? defaultKubeUpstreamOptions.connectTimeoutMs },
    });
    this.#current = { key, pool };
    if (previous !== undefined) void previous.close().catch(() => {});
    return pool;
  }

  /** Destroys the pool: requests still in flight are aborted. Later `dispatcher()` calls throw. */
  async close(): Promise<void> {
    this.#closed = true;
    const pool = this.#current?.pool;
    this.#current = undefined;
    if (pool !== undefined) await pool.destroy().catch(() => {});
  }
}

function tlsConnect(tls: KubeTlsOptions): Record<string, unknown> {
  const c: Record<string, unknown> = { rejectUnauthorized: tls.rejectUnauthorized };
  if (tls.ca !== undefined) c.ca = tls.ca;
  if (tls.cert !== undefined) c.cert = tls.cert;
  if (tls.key !== undefined) c.key = tls.key;
  if (tls.servername !== undefined) c.servername = tls.servername;
  return c;
}

function tlsKey(tls: KubeTlsOptions): string {
  const h = createHash('sha256');
  for (const part of [tls.ca, tls.cert, tls.key, tls.servername, String(tls.rejectUnauthorized)]) {
    h.update(part === undefined ? '-' : part);
    h.update('\0');
  }
  return h.digest('hex');
}
