import type { SessionOptions } from '@pipeops/tunnel-mux';
import { TUNNEL_PATH } from '@pipeops/tunnel-protocol';
import { AgentError } from './errors.ts';
import { ACCESS_AS_VALUES, type AccessAs } from './kube/admission.ts';
import { verifyAgentPolicy, type AgentPolicy } from './kube/policy.ts';

/** Extra fields merged into every status report (e.g. API-server reachability). */
export interface StatusExtras {
  apiServer?: { reachable: boolean; version?: string; checkedAt?: string; error?: string };
}

/** Supplies {@link StatusExtras} for each status report. May be async; errors are logged and ignored. */
export type StatusProvider = () => StatusExtras | Promise<StatusExtras>;

/** One readiness condition beyond "tunnel connected". */
export interface ReadinessCheck {
  /** Short name, reported as the reason when the check fails. */
  name: string;
  /** `true` when ready; `false` or a string (the reason) when not. Must be cheap: runs on every GET /ready. */
  check: () => boolean | string;
}

/** Outbound proxy settings; the CLI fills them from HTTPS_PROXY / HTTP_PROXY / NO_PROXY. */
export interface ProxyOptions {
  /** Proxy for `wss://` (and `https://`) targets, e.g. `http://proxy:3128`. */
  httpsProxy?: string;
  /** Proxy for `ws://` targets (development only). */
  httpProxy?: string;
  /** Comma/space separated hosts that bypass the proxy: `host`, `.suffix`, `*.suffix`, `host:port`, or `*`. */
  noProxy?: string;
}

/** Reconnect policy. */
export interface ReconnectOptions {
  /** `false` → the first failure or session loss ends the agent (`PT_ERR_RECONNECT_EXHAUSTED`). Default `true`. */
  enabled: boolean;
  /** Consecutive failed dials before giving up; `0` = unlimited. Default `0`. */
  maxAttempts: number;
  /** Base of the exponential backoff, ms. Default `5_000`. */
  intervalMs: number;
  /** Cap of the backoff, ms. Default `60_000`. */
  maxIntervalMs: number;
  /**
   * While waiting in backoff after the gateway's port refused connections, a
   * plain TCP connect is tried every `probeIntervalMs` (±20 % jitter); when the
   * port accepts again, the wait ends and the agent dials at once. `0`
   * disables the probe. Not used through a proxy. Default `250`.
   */
  probeIntervalMs?: number;
  /** A session that stayed up this long resets the backoff, ms. Default `10_000`. */
  stableAfterMs?: number;
}

/** Where the agent finds its API server and credentials (see the README, "Kubernetes path"). */
export interface KubernetesOptions {
  /** Kubeconfig file (current context). Absent and not `inCluster` → the defaults (`$KUBECONFIG`, `~/.kube/config`, service account), as kubectl. */
  kubeconfig?: string;
  /** Use the pod's service account. Default `false`. */
  inCluster: boolean;
  namespace: string;
  /** Prefix of `/var/run/secrets/kubernetes.io/serviceaccount` for `inCluster` (tests). Default `''`. */
  serviceAccountPathPrefix?: string;
  /** API-server check period (`/readyz`, `/version`), ms; `/ready` needs a success within 3 × this. Default `pollIntervalMs`. */
  apiHealthIntervalMs?: number;
  /** `false` disables the Kubernetes path (no `http` handler, no API checks): a tunnel-only agent. Default `true`. */
  enabled?: boolean;
  /**
   * Who runner requests act as at the API server: `agent` (the agent's own
   * credentials) or `runner` (impersonated as `pipeops:runner:<id>` in groups
   * `pipeops:runners` and the runner's groups from the gateway's tokens file;
   * the agent's credentials need the `impersonate` verb for them). Default `agent`.
   */
  accessAs?: AccessAs;
}

/** The audit trail: one record per runner request. */
export interface AuditOptions {
  /** JSON-lines file, appended to; absent or `''` → the log stream. */
  file?: string;
}

/** Options of {@link createAgent}. Durations are in milliseconds. */
export interface AgentOptions {
  /** `https://host[:port][/base]`, dialed as `wss://host[:port][/base]/v1/tunnel`. `http://` only with `allowInsecureTransport`. */
  apiUrl: string;
  /** Agent token, sent as `Authorization: Bearer …`; never logged. */
  token: string;
  agentId: string;
  name: string;
  clusterName: string;
  labels: Record<string, string>;
  /** Agent version, sent in `x-pipeops-agent-version` and hello. */
  version: string;
  /** Status report period, ms. Default `30_000`. */
  pollIntervalMs: number;
  /** Dial/handshake timeout (WebSocket upgrade, and hello→welcome), ms. Default `30_000`. */
  timeoutMs: number;
  /** Health listener port; `0` = ephemeral (read `agent.healthAddress`). Default `8080`. */
  port: number;
  /** Health listener host. Default `'0.0.0.0'`. */
  listenHost?: string;
  tls: {
    /** Skip certificate verification (logged loudly at start and on every connect). Default `false`. */
    insecureSkipVerify: boolean;
    /** PEM file of extra CA certificates, added to Node's default roots. (NODE_EXTRA_CA_CERTS is honoured by Node itself.) */
    caFile?: string;
  };
  /** Permit `http://` API URLs (dialed as `ws://`), for development. Default `false`. */
  allowInsecureTransport: boolean;
  reconnect: ReconnectOptions;
  /** Outbound proxy. Absent → direct. Libraries never read `process.env`: the CLI passes these in. */
  proxy?: ProxyOptions;
  /** yamux session options (`client` is forced to `true`). */
  mux?: Partial<SessionOptions>;
  kubernetes: KubernetesOptions;
  /** The cluster owner's policy, enforced on every runner request (see kube/policy.ts). Default: everything allowed. */
  policy?: AgentPolicy;
  /** Where audit records go. Default: the log stream. */
  audit?: AuditOptions;
  /** Hook for extra status fields (the agent adds `apiServer` itself). */
  statusProvider?: StatusProvider;
  /** Hook for extra readiness conditions (next issue: API server answered recently). */
  readinessChecks?: ReadinessCheck[];
}

/** Defaults for every option that has one. */
export const defaultAgentOptions = {
  labels: {},
  pollIntervalMs: 30_000,
  timeoutMs: 30_000,
  port: 8080,
  listenHost: '0.0.0.0',
  tls: { insecureSkipVerify: false },
  allowInsecureTransport: false,
  reconnect: { enabled: true, maxAttempts: 0, intervalMs: 5_000, maxIntervalMs: 60_000, probeIntervalMs: 250, stableAfterMs: 10_000 },
  kubernetes: { inCluster: false, namespace: 'default' },
} as const satisfies Partial<AgentOptions>;

function fail(field: string, why: string): never {
  throw new AgentError('PT_ERR_CONFIG', `invalid agent option ${field}: ${why}`);
}

function nonEmpty(v: unknown, field: string): void {
  if (typeof v !== 'string' || v.trim() === '') fail(field, 'must be a non-empty string');
}

function intInRange(v: unknown, field: string, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(field, `must be an integer in [${min}, ${max}]`);
}

/**
 * Throws `AgentError` `PT_ERR_CONFIG` whose message names the first invalid field.
 */
export function verifyAgentOptions(o: AgentOptions): void {
  if (o === null || typeof o !== 'object') fail('options', 'must be an object');
  tunnelUrlFromApiUrl(o.apiUrl, o.allowInsecureTransport === true);
  nonEmpty(o.token, 'token');
  if (/[\r\n]/.test(o.token)) fail('token', 'must not contain line breaks');
  nonEmpty(o.agentId, 'agentId');
  if (typeof o.name !== 'string') fail('name', 'must be a string');
  nonEmpty(o.clusterName, 'clusterName');
  nonEmpty(o.version, 'version');
  if (o.labels === null || typeof o.labels !== 'object') fail('labels', 'must be an object of strings');
  for (const [k, v] of Object.entries(o.labels)) if (typeof v !== 'string') fail(`labels.${k}`, 'must be a string');
  intInRange(o.pollIntervalMs, 'pollIntervalMs', 100, 86_400_000);
  intInRange(o.timeoutMs, 'timeoutMs', 1, 600_000);
  intInRange(o.port, 'port', 0, 65_535);
  if (o.listenHost !== undefined) nonEmpty(o.listenHost, 'listenHost');
  if (o.tls === null || typeof o.tls !== 'object') fail('tls', 'must be an object');
  if (typeof o.tls.insecureSkipVerify !== 'boolean') fail('tls.insecureSkipVerify', 'must be a boolean');
  if (o.tls.caFile !== undefined) nonEmpty(o.tls.caFile, 'tls.caFile');
  if (typeof o.allowInsecureTransport !== 'boolean') fail('allowInsecureTransport', 'must be a boolean');
  const r = o.reconnect;
  if (r === null || typeof r !== 'object') fail('reconnect', 'must be an object');
  if (typeof r.enabled !== 'boolean') fail('reconnect.enabled', 'must be a boolean');
  intInRange(r.maxAttempts, 'reconnect.maxAttempts', 0, Number.MAX_SAFE_INTEGER);
  intInRange(r.intervalMs, 'reconnect.intervalMs', 1, 3_600_000);
  intInRange(r.maxIntervalMs, 'reconnect.maxIntervalMs', 1, 3_600_000);
  if (r.maxIntervalMs < r.intervalMs) fail('reconnect.maxIntervalMs', 'must be >= reconnect.intervalMs');
  if (r.probeIntervalMs !== undefined) intInRange(r.probeIntervalMs, 'reconnect.probeIntervalMs', 0, 60_000);
  if (r.stableAfterMs !== undefined) intInRange(r.stableAfterMs, 'reconnect.stableAfterMs', 0, 86_400_000);
  if (o.proxy !== undefined) {
    for (const key of ['httpsProxy', 'httpProxy'] as const) {
      const p = o.proxy[key];
      if (p === undefined || p === '') continue;
      let u: URL;
      try {
        u = new URL(p);
      } catch {
        fail(`proxy.${key}`, 'must be a URL');
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(`proxy.${key}`, 'must be an http:// or https:// URL');
    }
    if (o.proxy.noProxy !== undefined && typeof o.proxy.noProxy !== 'string') fail('proxy.noProxy', 'must be a string');
  }
  if (o.kubernetes === null || typeof o.kubernetes !== 'object') fail('kubernetes', 'must be an object');
  if (typeof o.kubernetes.inCluster !== 'boolean') fail('kubernetes.inCluster', 'must be a boolean');
  if (o.kubernetes.apiHealthIntervalMs !== undefined) intInRange(o.kubernetes.apiHealthIntervalMs, 'kubernetes.apiHealthIntervalMs', 50, 86_400_000);
  if (o.kubernetes.enabled !== undefined && typeof o.kubernetes.enabled !== 'boolean') fail('kubernetes.enabled', 'must be a boolean');
  if (o.kubernetes.accessAs !== undefined && !ACCESS_AS_VALUES.includes(o.kubernetes.accessAs))
    fail('kubernetes.accessAs', `must be one of ${ACCESS_AS_VALUES.join(', ')}`);
  if (o.policy !== undefined) {
    try {
      verifyAgentPolicy(o.policy);
    } catch (err) {
      fail('policy', (err as Error).message);
    }
  }
  if (o.audit !== undefined && (o.audit === null || typeof o.audit !== 'object' || (o.audit.file !== undefined && typeof o.audit.file !== 'string')))
    fail('audit.file', 'must be a path');
  if (o.statusProvider !== undefined && typeof o.statusProvider !== 'function') fail('statusProvider', 'must be a function');
  if (o.readinessChecks !== undefined && !Array.isArray(o.readinessChecks)) fail('readinessChecks', 'must be an array');
}

/**
 * Maps the API URL to the tunnel WebSocket URL:
 * `https://h[:p][/base]` → `wss://h[:p][/base]/v1/tunnel`; `http://` → `ws://` only if `allowInsecure`.
 * Throws `PT_ERR_CONFIG` naming `apiUrl` otherwise.
 */
export function tunnelUrlFromApiUrl(apiUrl: string, allowInsecure: boolean): URL {
  if (typeof apiUrl !== 'string' || apiUrl === '') fail('apiUrl', 'must be a non-empty URL');
  let u: URL;
  try {
    u = new URL(apiUrl);
  } catch {
    fail('apiUrl', 'must be an absolute URL');
  }
  if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol === 'http:') {
    if (!allowInsecure) fail('apiUrl', 'http:// requires allowInsecureTransport (use https://)');
    u.protocol = 'ws:';
  } else fail('apiUrl', 'must start with https:// (or http:// with allowInsecureTransport)');
  if (u.username !== '' || u.password !== '') fail('apiUrl', 'must not contain credentials');
  if (u.search !== '' || u.hash !== '') fail('apiUrl', 'must not have a query or fragment');
  u.pathname = `${u.pathname.replace(/\/+$/, '')}${TUNNEL_PATH}`;
  return u;
}
