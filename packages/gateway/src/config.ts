import type { SessionOptions } from '@pipeops/tunnel-mux';
import { addressedCluster, clusterAddressSuffixProblem, DEFAULT_CLUSTER_ADDRESS_SUFFIX } from '@pipeops/tunnel-protocol';
import { gatewayError } from './errors.ts';
import type { FleetOptions } from './fleet/fleet.ts';
import { verifyRunnerLimits, type RunnerLimits } from './runner-limits.ts';
import type { TokensConfig } from './tokens.ts';

/** Options of {@link createGateway}. Durations are in milliseconds, sizes in bytes. */
export interface GatewayOptions {
  /** Address to listen on, e.g. `0.0.0.0` or `127.0.0.1`. */
  host: string;
  /** Port; 0 picks an ephemeral port (see `start()`'s result). */
  port: number;
  /** PEM certificate and key. Absent → plain HTTP (tests and development only). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** YAML tokens file, watched and reloaded on change. Exactly one of `tokensFile` and `tokens`. */
  tokensFile?: string;
  /** Tokens given inline (no reload from disk). */
  tokens?: TokensConfig;
  /** `close()`'s default deadline for in-flight streams to finish (ms). Default 30_000. */
  drainTimeoutMs: number;
  /** Time an agent has after the upgrade to open the control stream and send `hello` (ms). Default 10_000. */
  handshakeTimeoutMs: number;
  /** Largest WebSocket message accepted from an agent (bytes). Default 1_048_576 (1 MiB). */
  maxPayloadBytes?: number;
  /** Mux session options for agent sessions (`client` is always false here). */
  mux?: Partial<SessionOptions>;
  /** Also collect prom-client's default process metrics on the injected registry. Default false (the CLI turns it on). */
  collectDefaultMetrics?: boolean;
  /** Debounce of tokens-file change events before a reload (ms). Default 100. */
  tokensReloadDebounceMs?: number;
  /** Version reported in `welcome`. Default the package version. */
  gatewayVersion?: string;
  /** Runner routes: time from opening the agent stream to the response head; beyond it the runner gets a 504 `Status` (ms). Default 30_000. */
  agentHeadTimeoutMs?: number;
  /** `GET /ws/k8s` (JSON protocol): largest message accepted from a runner (bytes). Default 1_048_576 (1 MiB). */
  jsonMaxMessageBytes?: number;
  /** Every runner's limits unless its tokens-file entry sets its own (`0` = unlimited). Default `{ maxStreams: 1_000, requestsPerSecond: 0, burst: 0 }`. */
  runnerLimits?: Partial<RunnerLimits>;
  /** Audit records (one per runner request) go to this JSON-lines file; absent or `''` → the log stream. */
  auditFile?: string;
  /** Time a client has from its TCP connection to the end of the TLS handshake; beyond it the connection is destroyed (ms). Absolute, so a handshake trickled byte by byte ends too. Default 10_000. */
  tlsHandshakeTimeoutMs?: number;
  /** Time a client has to send a complete request head (request line and headers), from the connection (after TLS) or, on a kept-alive connection, from the request's first byte; beyond it → 408 and the connection is closed (ms). Only the head: a WATCH, a log follow, or an upgraded exec is never cut by it. Default 30_000. */
  requestHeadTimeoutMs?: number;
  /** Open TCP connections the server accepts at once (agents, runners, probes, handshakes in progress); a connection beyond it is closed at once. Default 10_000. */
  maxConnections?: number;
  /** Run as one replica of a fleet sharing a registry in Redis (see fleet/); absent: the gateway runs alone. */
  fleet?: FleetOptions;
  /**
   * Per-cluster addresses: a TLS connection whose server name (SNI) is
   * `<cluster>.<suffix>` is cluster `<cluster>`'s, with the API server's own
   * paths (`/version`, `/api/v1/…`, exec/attach/port-forward upgrades) and
   * the `/k8s/clusters/{cluster}` route's authentication, owner policy,
   * audit, limits and metrics. The certificate must cover `*.<suffix>`; the
   * names need not resolve in DNS (kubeconfig `tls-server-name`). No name of
   * the gateway itself (agents', replicas', load balancer's) may end in it.
   * A lower-case DNS name of at least two labels; `''` turns the addresses
   * off. Default `'clusters.localhost'` (what the `--dev` certificate covers).
   */
  clusterAddressSuffix?: string;
}

/** Defaults of the optional and commonly defaulted {@link GatewayOptions} fields. */
export const defaultGatewayOptions = Object.freeze({
  drainTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  maxPayloadBytes: 1024 * 1024,
  collectDefaultMetrics: false,
  tokensReloadDebounceMs: 100,
  gatewayVersion: '0.1.0',
  agentHeadTimeoutMs: 30_000,
  jsonMaxMessageBytes: 1024 * 1024,
  tlsHandshakeTimeoutMs: 10_000,
  requestHeadTimeoutMs: 30_000,
  maxConnections: 10_000,
  clusterAddressSuffix: DEFAULT_CLUSTER_ADDRESS_SUFFIX,
});

/** Options with every defaulted field filled in. */
export type ResolvedGatewayOptions = GatewayOptions &
  Required<
    Pick<
      GatewayOptions,
      | 'maxPayloadBytes'
      | 'collectDefaultMetrics'
      | 'tokensReloadDebounceMs'
      | 'gatewayVersion'
      | 'agentHeadTimeoutMs'
      | 'jsonMaxMessageBytes'
      | 'tlsHandshakeTimeoutMs'
      | 'requestHeadTimeoutMs'
      | 'maxConnections'
      | 'clusterAddressSuffix'
    >
  >;

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Throws TunnelError `PT_ERR_GATEWAY_CONFIG` naming the first invalid option. */
export function verifyGatewayOptions(o: GatewayOptions): void {
  const fail = (key: string, why: string): never => {
    throw gatewayError('PT_ERR_GATEWAY_CONFIG', `invalid gateway option ${key}: ${why}`);
  };
  if (o === null || typeof o !== 'object') fail('options', 'must be an object');
  if (typeof o.host !== 'string' || o.host === '') fail('host', 'must be a non-empty string');
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65_535) fail('port', `must be an integer 0..65535, got ${String(o.port)}`);
  const ms = (
    key: 'drainTimeoutMs' | 'handshakeTimeoutMs' | 'tokensReloadDebounceMs' | 'agentHeadTimeoutMs' | 'tlsHandshakeTimeoutMs' | 'requestHeadTimeoutMs',
    min: number,
  ): void => {
    const v = o[key];
    if (v === undefined) return;
    if (!Number.isInteger(v) || v < min || v > MAX_TIMER_MS) fail(key, `must be an integer ${min}..${MAX_TIMER_MS} (ms), got ${String(v)}`);
  };
  ms('drainTimeoutMs', 0);
  ms('handshakeTimeoutMs', 1);
  ms('tokensReloadDebounceMs', 0);
  ms('agentHeadTimeoutMs', 1);
  ms('tlsHandshakeTimeoutMs', 1);
  ms('requestHeadTimeoutMs', 1);
  if (o.maxConnections !== undefined && (!Number.isInteger(o.maxConnections) || o.maxConnections < 1)) {
    fail('maxConnections', `must be an integer >= 1, got ${String(o.maxConnections)}`);
  }
  if (o.jsonMaxMessageBytes !== undefined && (!Number.isInteger(o.jsonMaxMessageBytes) || o.jsonMaxMessageBytes < 1024)) {
    fail('jsonMaxMessageBytes', `must be an integer >= 1024 (bytes), got ${String(o.jsonMaxMessageBytes)}`);
  }
  if (o.maxPayloadBytes !== undefined && (!Number.isInteger(o.maxPayloadBytes) || o.maxPayloadBytes < 1024)) {
    fail('maxPayloadBytes', `must be an integer >= 1024 (bytes), got ${String(o.maxPayloadBytes)}`);
  }
  if (o.runnerLimits !== undefined) {
    const given = o.runnerLimits as Record<string, unknown>;
    const snake = { max_streams: given.maxStreams, requests_per_second: given.requestsPerSecond, burst: given.burst };
    try {
      verifyRunnerLimits(Object.fromEntries(Object.entries(snake).filter(([, v]) => v !== undefined)), 'runnerLimits');
    } catch (err) {
      fail('runnerLimits', (err as Error).message);
    }
  }
  if (o.auditFile !== undefined && typeof o.auditFile !== 'string') fail('auditFile', 'must be a path');
  if ((o.tokensFile === undefined) === (o.tokens === undefined)) fail('tokensFile', 'give exactly one of tokensFile and tokens');
  if (o.tokensFile !== undefined && (typeof o.tokensFile !== 'string' || o.tokensFile === '')) fail('tokensFile', 'must be a path');
  if (o.tls !== undefined && (!o.tls.cert || !o.tls.key)) fail('tls', 'needs both cert and key');
  if (o.clusterAddressSuffix !== undefined) {
    if (typeof o.clusterAddressSuffix !== 'string') fail('clusterAddressSuffix', 'must be a string');
    const problem = clusterAddressSuffixProblem(o.clusterAddressSuffix);
    if (problem !== undefined) fail('clusterAddressSuffix', problem);
  }
  if (o.fleet !== undefined) verifyFleetOptions(o.fleet, fail);
  // A replica reached at a name under the suffix would have its replica links taken for a cluster's requests.
  const suffix = o.clusterAddressSuffix ?? DEFAULT_CLUSTER_ADDRESS_SUFFIX;
  if (o.fleet !== undefined && typeof o.fleet.advertiseUrl === 'string' && addressedCluster(new URL(o.fleet.advertiseUrl).hostname, suffix) !== undefined) {
    fail('clusterAddressSuffix', `the replica's advertise URL ${o.fleet.advertiseUrl} is a name under it; choose a suffix used for cluster addresses only`);
  }
}

/** Smallest replica secret accepted (characters). */
export const MIN_REPLICA_SECRET_LENGTH = 16;

function verifyFleetOptions(f: FleetOptions, fail: (key: string, why: string) => never): void {
  if (f === null || typeof f !== 'object') fail('fleet', 'must be an object');
  if (typeof f.redisUrl !== 'string' || !/^rediss?:\/\/[^/]/.test(f.redisUrl)) fail('fleet.redisUrl', 'must be a redis:// or rediss:// URL');
  if (typeof f.advertiseUrl !== 'function') {
    let advertise: URL | undefined;
    try {
      advertise = new URL(f.advertiseUrl);
    } catch {
      /* reported below */
    }
    if (advertise === undefined || !['https:', 'http:'].includes(advertise.protocol) || advertise.pathname !== '/') {
      fail('fleet.advertiseUrl', 'must be the https://host:port (no path) other replicas reach this one at');
    }
  }
  if (typeof f.secret !== 'string' || f.secret.length < MIN_REPLICA_SECRET_LENGTH)
    fail('fleet.secret', `must be at least ${MIN_REPLICA_SECRET_LENGTH} characters`);
  for (const key of ['heartbeatMs', 'leaseMs', 'verifyMs'] as const) {
    const v = f[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > MAX_TIMER_MS))
      fail(`fleet.${key}`, `must be an integer 1..${MAX_TIMER_MS} (ms), got ${String(v)}`);
  }
  if ((f.leaseMs ?? 3_000) <= (f.heartbeatMs ?? 1_000)) fail('fleet.leaseMs', 'must be longer than fleet.heartbeatMs');
}

/** Verifies and fills in defaults. */
export function resolveGatewayOptions(o: GatewayOptions): ResolvedGatewayOptions {
  verifyGatewayOptions(o);
  return {
    ...o,
    drainTimeoutMs: o.drainTimeoutMs ?? defaultGatewayOptions.drainTimeoutMs,
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? defaultGatewayOptions.handshakeTimeoutMs,
    maxPayloadBytes: o.maxPayloadBytes ?? defaultGatewayOptions.maxPayloadBytes,
    collectDefaultMetrics: o.collectDefaultMetrics ?? defaultGatewayOptions.collectDefaultMetrics,
    tokensReloadDebounceMs: o.tokensReloadDebounceMs ?? defaultGatewayOptions.tokensReloadDebounceMs,
    gatewayVersion: o.gatewayVersion ?? defaultGatewayOptions.gatewayVersion,
    agentHeadTimeoutMs: o.agentHeadTimeoutMs ?? defaultGatewayOptions.agentHeadTimeoutMs,
    jsonMaxMessageBytes: o.jsonMaxMessageBytes ?? defaultGatewayOptions.jsonMaxMessageBytes,
    tlsHandshakeTimeoutMs: o.tlsHandshakeTimeoutMs ?? defaultGatewayOptions.tlsHandshakeTimeoutMs,
    requestHeadTimeoutMs: o.requestHeadTimeoutMs ?? defaultGatewayOptions.requestHeadTimeoutMs,
    maxConnections: o.maxConnections ?? defaultGatewayOptions.maxConnections,
    clusterAddressSuffix: o.clusterAddressSuffix ?? defaultGatewayOptions.clusterAddressSuffix,
  };
}
