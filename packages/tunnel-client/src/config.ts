import { randomUUID } from 'node:crypto';
import type { SessionOptions } from '@pipeops/tunnel-mux';
import type { Logger } from 'pino';
import { ClientError } from './errors.ts';

/** Reconnect policy of the tunnel's WebSocket. */
export interface ReconnectOptions {
  /** Re-dial after the session is lost. Default `true`. */
  enabled?: boolean;
  /** Base of the full-jitter backoff, ms. Default 250. */
  intervalMs?: number;
  /** Ceiling of the backoff, ms. Default 10_000. */
  maxIntervalMs?: number;
  /** Failed dials in a row before giving up (the tunnel then closes); 0 = never give up. Default 0. */
  maxAttempts?: number;
  /** A session up this long resets the failure streak, ms. Default 10_000. */
  stableAfterMs?: number;
}

/**
 * Resuming of WATCH and `logs -f` streams cut by a tunnel drop (see
 * src/resume/): the same request is sent again once the tunnel is back, from
 * the last `resourceVersion` (or, for logs with `timestamps=true`, the last
 * line's timestamp), and the caller's response simply goes on.
 */
export interface ResumeOptions {
  /** Resume cut streams. Per request: header `x-pipeops-resume: off`, `watch(path, { resume: false })`. Default `true`. */
  enabled?: boolean;
  /**
   * How long after the drop a stream keeps trying (the tunnel to come back,
   * then the agent to answer; attempts spaced by the `reconnect` backoff)
   * before the caller gets the error it would have got without resuming, ms.
   * Default 60_000.
   */
  maxWaitMs?: number;
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** The gateway, `https://host:port` (dialed as `wss://`). `http://` is for development only. Required. */
  gatewayUrl: string;
  /** Runner token (sent as `Authorization: Bearer`; never logged). Required. */
  token: string;
  /** Cluster to reach. Required. */
  cluster: string;
  /** Sent as `runner_id`; appears in the gateway's log lines. Default `runner-<random>`. */
  runnerId?: string;
  /** Extra trusted CA certificates (PEM), added to Node's default set. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Skip verification of the gateway's certificate (development only). Default `false`. */
  insecureSkipVerify?: boolean;
  /** Reconnect policy; see {@link ReconnectOptions}. */
  reconnect?: ReconnectOptions;
  /** How long `connect()` keeps trying to open the first session (dial failures are retried with backoff), ms. Default 10_000. */
  connectTimeoutMs?: number;
  /** WebSocket handshake timeout of one dial, ms. Default 10_000. */
  handshakeTimeoutMs?: number;
  /**
   * A request made while the tunnel is down waits this long for it to come back
   * before failing with `PT_ERR_CLIENT_DISCONNECTED`, ms. Default 0 (fail fast).
   */
  waitForConnectionMs?: number;
  /** Resuming of cut WATCH and `logs -f` streams; see {@link ResumeOptions}. */
  resume?: ResumeOptions;
  /** The origin `tunnel.dispatcher` serves. Default `http://kubernetes.tunnel.invalid` (`.invalid` never resolves: RFC 2606). */
  baseUrl?: string;
  /** yamux options of the session (the runner is always the mux client). */
  mux?: Partial<Omit<SessionOptions, 'client'>>;
  /** pino logger. Default: silent. */
  logger?: Logger;
}

/**
 * The session's defaults where they differ from the mux library's: windows
 * that grow from 256 KiB toward 16 MiB while a stream is read quickly (one
 * stream keeps up over a high-latency link; a paused reader still holds only
 * its current window), and room for 65,536 streams (every WATCH holds one).
 */
export const defaultMuxOptions = { maxStreamWindowBytes: 16 * 1024 * 1024, autoTuneWindow: true, maxConcurrentStreams: 65_536 } as const;

/** The defaults of every {@link ConnectOptions} field that has one. */
export const defaultConnectOptions = {
  insecureSkipVerify: false,
  reconnect: { enabled: true, intervalMs: 250, maxIntervalMs: 10_000, maxAttempts: 0, stableAfterMs: 10_000 },
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  waitForConnectionMs: 0,
  resume: { enabled: true, maxWaitMs: 60_000 },
  baseUrl: 'http://kubernetes.tunnel.invalid',
} as const;

/** {@link ConnectOptions} with defaults applied and checked. */
export interface ResolvedConnectOptions {
  gatewayUrl: URL;
  token: string;
  cluster: string;
  runnerId: string;
  ca: Array<string | Buffer> | undefined;
  insecureSkipVerify: boolean;
  reconnect: Required<ReconnectOptions>;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  waitForConnectionMs: number;
  resume: Required<ResumeOptions>;
  baseUrl: URL;
  mux: Partial<Omit<SessionOptions, 'client'>>;
}

function fail(field: string, reason: string): never {
  throw new ClientError('PT_ERR_CLIENT_CONFIG', `invalid tunnel-client option ${field}: ${reason}`);
}

function nonNegative(field: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) fail(field, `expected a non-negative number, got ${String(v)}`);
  return v;
}

/** Applies the defaults and checks every option; throws `PT_ERR_CLIENT_CONFIG` naming the field. */
export function resolveConnectOptions(o: ConnectOptions): ResolvedConnectOptions {
  if (typeof o.gatewayUrl !== 'string' || o.gatewayUrl === '') fail('gatewayUrl', 'required');
  let gatewayUrl: URL;
  try {
    gatewayUrl = new URL(o.gatewayUrl);
  } catch {
    fail('gatewayUrl', `not a URL: ${o.gatewayUrl}`);
  }
  if (!['https:', 'http:', 'wss:', 'ws:'].includes(gatewayUrl.protocol))
    fail('gatewayUrl', `expected https:// (or http:// for development), got ${gatewayUrl.protocol}`);
  if (typeof o.token !== 'string' || o.token === '') fail('token', 'required');
  if (typeof o.cluster !== 'string' || o.cluster === '') fail('cluster', 'required');
  let baseUrl: URL;
  try {
    baseUrl = new URL(o.baseUrl ?? defaultConnectOptions.baseUrl);
  } catch {
    fail('baseUrl', `not a URL: ${String(o.baseUrl)}`);
  }
  if (baseUrl.protocol !== 'http:' || baseUrl.pathname !== '/' || baseUrl.search !== '') fail('baseUrl', 'expected an http:// origin without path');
  const d = defaultConnectOptions.reconnect;
  const r = o.reconnect ?? {};
  const reconnect: Required<ReconnectOptions> = {
    enabled: r.enabled ?? d.enabled,
    intervalMs: nonNegative('reconnect.intervalMs', r.intervalMs ?? d.intervalMs),
    maxIntervalMs: nonNegative('reconnect.maxIntervalMs', r.maxIntervalMs ?? d.maxIntervalMs),
    maxAttempts: nonNegative('reconnect.maxAttempts', r.maxAttempts ?? d.maxAttempts),
    stableAfterMs: nonNegative('reconnect.stableAfterMs', r.stableAfterMs ?? d.stableAfterMs),
  };
  if (reconnect.maxIntervalMs < reconnect.intervalMs) fail('reconnect.maxIntervalMs', 'must not be below reconnect.intervalMs');
  const ca = o.ca === undefined ? undefined : Array.isArray(o.ca) ? o.ca : [o.ca];
  for (const c of ca ?? []) if (!String(c).includes('-----BEGIN CERTIFICATE-----')) fail('ca', 'expected PEM certificates');
  return {
    gatewayUrl,
    token: o.token,
    cluster: o.cluster,
    runnerId: o.runnerId ?? `runner-${randomUUID().slice(0, 8)}`,
    ca,
    insecureSkipVerify: o.insecureSkipVerify ?? defaultConnectOptions.insecureSkipVerify,
    reconnect,
    connectTimeoutMs: nonNegative('connectTimeoutMs', o.connectTimeoutMs ?? defaultConnectOptions.connectTimeoutMs),
    handshakeTimeoutMs: nonNegative('handshakeTimeoutMs', o.handshakeTimeoutMs ?? defaultConnectOptions.handshakeTimeoutMs),
    waitForConnectionMs: nonNegative('waitForConnectionMs', o.waitForConnectionMs ?? defaultConnectOptions.waitForConnectionMs),
    resume: {
      enabled: o.resume?.enabled ?? defaultConnectOptions.resume.enabled,
      maxWaitMs: nonNegative('resume.maxWaitMs', o.resume?.maxWaitMs ?? defaultConnectOptions.resume.maxWaitMs),
    },
    baseUrl: new URL(baseUrl.origin),
    mux: { ...defaultMuxOptions, ...o.mux },
  };
}
