import { createHash } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { buildConnector, Dispatcher } from 'undici';
import type { KubeTlsOptions } from './credentials.ts';
import { Pool } from './undici-parts.ts';
import { bodyBufferConnector } from './upstream-socket.ts';

/** Connection settings of the API-server pools. Durations in milliseconds. */
export interface KubeUpstreamOptions {
  /** Max connections of each pool; `undefined` = unlimited (over HTTP/1.1 every WATCH holds one). */
  connections?: number;
  /** TCP + TLS connect timeout. Default `10_000`. */
  connectTimeoutMs?: number;
  /** Time to the response head. Default `120_000`; the gateway's own head timeout is usually shorter. */
  headersTimeoutMs?: number;
  /** Idle keep-alive connection lifetime. Default `30_000`. */
  keepAliveTimeoutMs?: number;
  /**
   * HTTP/2 streams per connection of the streaming pool; a full connection
   * makes the pool open another. Default `100`, below kube-apiserver's 250
   * (Go's default SETTINGS_MAX_CONCURRENT_STREAMS); the server's own limit wins when lower.
   */
  maxConcurrentStreams?: number;
}

export const defaultKubeUpstreamOptions = {
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 120_000,
  keepAliveTimeoutMs: 30_000,
  maxConcurrentStreams: 100,
} as const satisfies KubeUpstreamOptions;

/** Which pool a request goes through. */
export type UpstreamUse =
  /** Plain requests, bodies and upgrades: HTTP/1.1, one request per connection at a time. */
  | 'request'
  /** Long-lived streaming reads (WATCH, `logs -f`): HTTP/2 when the server offers it, many per connection. */
  | 'stream';

interface Pools {
  key: string;
  /** The identity last served by these pools (compared by reference before hashing). */
  tls: KubeTlsOptions;
  request: Pool;
  stream: Pool;
}

/**
 * undici pools bound to the one API-server origin. A `Pool` can only ever
 * dial its origin, whatever path, method or Host a request carries, so no
 * other server is reachable through it. Connections are reused; one pair of
 * pools per distinct TLS client identity (an exec plugin may hand out a new
 * client certificate), the previous pair closed gracefully (in-flight
 * requests finish).
 *
 * Two pools, because the two kinds of traffic want different protocols:
 * - `request`: HTTP/1.1 only. Exec, attach and port-forward need a `101`
 *   upgrade, which HTTP/2 does not have.
 * - `stream`: offers h2 by ALPN. An idle WATCH then costs one h2 stream
 *   instead of one TLS connection (~50 KB of native memory each): 10,000
 *   watches fit in ~100 connections. A server that only speaks HTTP/1.1 gets
 *   one connection per watch, as before.
 */
export class KubeUpstream {
  readonly origin: URL;
  readonly #o: KubeUpstreamOptions;
  #current: Pools | undefined;
  #closed = false;

  constructor(origin: URL, options: KubeUpstreamOptions = {}) {
    this.origin = new URL(origin.origin);
    this.#o = options;
  }

  /** The pool for this TLS identity and use. */
  dispatcher(tls: KubeTlsOptions, use: UpstreamUse = 'request'): Dispatcher {
    if (this.#closed) throw new Error('upstream closed');
    // Per request: hash the identity only when it is not made of the very same values as the last one.
    if (this.#current !== undefined && sameIdentity(this.#current.tls, tls)) return this.#current[use];
    const key = tlsKey(tls);
    if (this.#current?.key !== key) {
      const previous = this.#current;
      this.#current = this.#pools(key, tls);
      if (previous !== undefined) {
        void previous.request.close().catch(() => {});
        void previous.stream.close().catch(() => {});
      }
    }
    this.#current.tls = tls;
    return this.#current[use];
  }

  /** Destroys both pools: requests still in flight are aborted. Later `dispatcher()` calls throw. */
  async close(): Promise<void> {
    this.#closed = true;
    const pools = this.#current;
    this.#current = undefined;
    if (pools !== undefined) {
      await Promise.all([pools.request.destroy().catch(() => {}), pools.stream.destroy().catch(() => {})]);
    }
  }

  #pools(key: string, tls: KubeTlsOptions): Pools {
    const o = this.#o;
    const timeout = o.connectTimeoutMs ?? defaultKubeUpstreamOptions.connectTimeoutMs;
    // Built once: both pools share the TLS context (see tlsConnect).
    const connect = this.origin.protocol === 'https:' ? { ...tlsConnect(tls), timeout } : { timeout };
    const common = {
      ...(o.connections !== undefined ? { connections: o.connections } : {}),
      headersTimeout: o.headersTimeoutMs ?? defaultKubeUpstreamOptions.headersTimeoutMs,
      // WATCH and logs -f may be silent for a long time: never time a body out.
      bodyTimeout: 0,
      keepAliveTimeout: o.keepAliveTimeoutMs ?? defaultKubeUpstreamOptions.keepAliveTimeoutMs,
      connect,
    };
    return {
      key,
      tls,
      // undici 8 would negotiate h2 by default; upgrades must stay HTTP/1.1. Bodies go here: these
      // sockets give the pooled body buffers back once written (upstream-socket.ts).
      request: new Pool(this.origin, { ...common, allowH2: false, connect: bodyBufferConnector(connect as buildConnector.BuildOptions) }),
      stream: new Pool(this.origin, {
        ...common,
        allowH2: true,
        h2Options: { maxConcurrentStreams: o.maxConcurrentStreams ?? defaultKubeUpstreamOptions.maxConcurrentStreams },
      }),
    };
  }
}

/**
 * One TLS context for every connection of the pools. Handing `ca`/`cert`/`key`
 * to each `tls.connect` instead would build a new context (a certificate
 * store of its own) per connection: with 10,000 WATCH streams that was most
 * of the agent's memory.
 */
function tlsConnect(tls: KubeTlsOptions): Record<string, unknown> {
  const secureContext = createSecureContext({
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: tls.key } : {}),
  });
  const c: Record<string, unknown> = { rejectUnauthorized: tls.rejectUnauthorized, secureContext };
  if (tls.servername !== undefined) c.servername = tls.servername;
  return c;
}

/** The same identity when every part is the same value (the credentials hand out the same Buffers until a file changes). */
function sameIdentity(a: KubeTlsOptions, b: KubeTlsOptions): boolean {
  return a.ca === b.ca && a.cert === b.cert && a.key === b.key && a.servername === b.servername && a.rejectUnauthorized === b.rejectUnauthorized;
}

function tlsKey(tls: KubeTlsOptions): string {
  const h = createHash('sha256');
  for (const part of [tls.ca, tls.cert, tls.key, tls.servername, String(tls.rejectUnauthorized)]) {
    h.update(part === undefined ? '-' : part);
    h.update('\0');
  }
  return h.digest('hex');
}
