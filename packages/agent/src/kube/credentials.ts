import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { AgentError } from '../errors.ts';

/** Where the agent's API-server credentials come from (a subset of `AgentOptions.kubernetes`). */
export interface KubeCredentialsOptions {
  /** Kubeconfig file; its current context is used. */
  kubeconfig?: string;
  /** Use the pod's service account (`KUBERNETES_SERVICE_HOST`/`_PORT`, token and CA under `/var/run/secrets/kubernetes.io/serviceaccount`). */
  inCluster: boolean;
  /** Prefix of the service-account directory (tests point it at a temp dir). Default `''`. */
  serviceAccountPathPrefix?: string;
}

/** TLS material for the API-server connection (Node `tls.connect` option names). */
export interface KubeTlsOptions {
  ca?: Buffer;
  cert?: Buffer | string;
  key?: Buffer | string;
  servername?: string;
  /** `false` only when the kubeconfig says `insecure-skip-tls-verify`. */
  rejectUnauthorized: boolean;
}

/** Per-request credential material. */
export interface ResolvedCredentials {
  /** `Authorization` (and impersonation) headers to send; never logged. */
  headers: Record<string, string>;
  /** TLS options for this request (an exec plugin may return a client certificate). */
  tls: KubeTlsOptions;
}

/** The agent's way into its API server. */
export interface KubeCredentials {
  /** API-server origin (`https://host:port`, or `http://` for a local plaintext API). */
  readonly serverUrl: URL;
  /** `in-cluster` or `kubeconfig`. */
  readonly source: 'in-cluster' | 'kubeconfig';
  /** TLS options as configured (CA, client certificate, server name, verification). */
  readonly tlsOptions: KubeTlsOptions;
  /** The headers that authenticate one request, evaluated now (rotated token files and expired exec credentials are picked up). */
  authHeaders(): Promise<Record<string, string>>;
  /** Headers and TLS material for one request. */
  resolve(): Promise<ResolvedCredentials>;
  /** Drops cached credentials (exec plugin results, token file), e.g. after the API server answered 401. */
  invalidate(): void;
}

/** Returned by {@link loadKubeCredentials} when neither a kubeconfig nor in-cluster mode is configured and no default kubeconfig exists. */
export const NOT_CONFIGURED = 'not-configured' as const;

/**
 * Loads the agent's API-server credentials with `@kubernetes/client-node`:
 * `inCluster` → `loadFromCluster()`; else `kubeconfig` → that file's current
 * context; else client-node's default locations (`$KUBECONFIG`,
 * `~/.kube/config`, an in-cluster service account). Returns
 * {@link NOT_CONFIGURED} when none of these exists.
 *
 * Throws `AgentError` `PT_ERR_KUBE_CREDENTIALS` when the configuration exists
 * but cannot be used (unreadable file, no current context, bad server URL).
 */
export function loadKubeCredentials(o: KubeCredentialsOptions): KubeCredentials | typeof NOT_CONFIGURED {
  const load = (): KubeConfig => {
    const kc = new KubeConfig();
    if (o.inCluster) kc.loadFromCluster(o.serviceAccountPathPrefix ?? '');
    else if (o.kubeconfig !== undefined && o.kubeconfig !== '') kc.loadFromFile(o.kubeconfig);
    else kc.loadFromDefault();
    return kc;
  };
  let kc: KubeConfig;
  try {
    kc = load();
  } catch (err) {
    throw fail(`cannot load ${describe(o)}: ${(err as Error).message}`, err);
  }
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  // client-node's last resort when nothing is configured.
  if (!o.inCluster && (o.kubeconfig === undefined || o.kubeconfig === '') && cluster?.name === 'cluster' && cluster.server === 'http://localhost:8080' && user?.name === 'user') {
    return NOT_CONFIGURED;
  }
  if (cluster === null) throw fail(`${describe(o)}: no current context or cluster`);
  if (o.inCluster && /^https?:\/\/undefined:/.test(cluster.server)) throw fail('in-cluster service account unusable: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT are not set');
  let serverUrl: URL;
  try {
    serverUrl = new URL(cluster.server);
  } catch (err) {
    throw fail(`${describe(o)}: invalid server URL`, err);
  }
  if (serverUrl.protocol !== 'https:' && serverUrl.protocol !== 'http:') throw fail(`${describe(o)}: server must be https:// or http://`);
  if (o.inCluster) {
    const tokenFile = tokenFileOf(user);
    try {
      statSync(tokenFile ?? '');
      readFileSync(cluster.caFile ?? '');
    } catch (err) {
      throw fail(`in-cluster service account unusable: ${(err as Error).message}`, err);
    }
  }
  return new Credentials(o, load, kc, new URL(serverUrl.origin));
}

function describe(o: KubeCredentialsOptions): string {
  if (o.inCluster) return 'in-cluster service account';
  return o.kubeconfig !== undefined && o.kubeconfig !== '' ? `kubeconfig ${o.kubeconfig}` : 'default kubeconfig';
}

function fail(message: string, cause?: unknown): AgentError {
  return new AgentError('PT_ERR_KUBE_CREDENTIALS', message, cause === undefined ? undefined : { cause });
}

function tokenFileOf(user: ReturnType<KubeConfig['getCurrentUser']>): string | undefined {
  const f: unknown = (user?.authProvider as { config?: { tokenFile?: unknown } } | undefined)?.config?.tokenFile;
  return typeof f === 'string' && f !== '' ? f : undefined;
}

/**
 * A token file re-read whenever it changes (size, mtime or inode — kubelet
 * rotates projected tokens by swapping a symlink), checked on every use with
 * one `stat`. client-node's own FileAuth caches for 60 s; this does not.
 */
class RotatingTokenFile {
  readonly #path: string;
  #sig = '';
  #token = '';

  constructor(path: string) {
    this.#path = path;
  }

  async read(): Promise<string> {
    const s = await stat(this.#path);
    const sig = `${s.ino}:${s.size}:${s.mtimeMs}`;
    if (sig !== this.#sig) {
      this.#token = (await readFile(this.#path, 'utf8')).trim();
      this.#sig = sig;
    }
    return this.#token;
  }

  invalidate(): void {
    this.#sig = '';
  }
}

class Credentials implements KubeCredentials {
  readonly serverUrl: URL;
  readonly source: 'in-cluster' | 'kubeconfig';
  readonly tlsOptions: KubeTlsOptions;
  readonly #load: () => KubeConfig;
  #kc: KubeConfig;
  #tokenFile: RotatingTokenFile | undefined;

  constructor(o: KubeCredentialsOptions, load: () => KubeConfig, kc: KubeConfig, serverUrl: URL) {
    this.serverUrl = serverUrl;
    this.source = o.inCluster ? 'in-cluster' : 'kubeconfig';
    this.#load = load;
    this.#kc = kc;
    const tf = tokenFileOf(kc.getCurrentUser());
    this.#tokenFile = tf === undefined ? undefined : new RotatingTokenFile(tf);
    this.tlsOptions = staticTls(kc);
  }

  async authHeaders(): Promise<Record<string, string>> {
    return (await this.resolve()).headers;
  }

  async resolve(): Promise<ResolvedCredentials> {
    // applyToHTTPSOptions runs client-node's authenticators (exec plugins with
    // their expiry-aware cache, OIDC, static tokens) and re-reads CA and
    // client-certificate files, so rotations on disk are seen per request.
    const opts: { headers?: Record<string, unknown>; ca?: unknown; cert?: unknown; key?: unknown; servername?: string; rejectUnauthorized?: boolean; auth?: string } = {};
    await this.#kc.applyToHTTPSOptions(opts as Parameters<KubeConfig['applyToHTTPSOptions']>[0]);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (typeof v === 'string') headers[k.toLowerCase()] = v;
    if (opts.auth !== undefined) headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    if (this.#tokenFile !== undefined) headers.authorization = `Bearer ${await this.#tokenFile.read()}`;
    const tls: KubeTlsOptions = { ...this.tlsOptions, rejectUnauthorized: opts.rejectUnauthorized !== false && this.tlsOptions.rejectUnauthorized };
    if (Buffer.isBuffer(opts.ca)) tls.ca = opts.ca;
    if (Buffer.isBuffer(opts.cert) || typeof opts.cert === 'string') tls.cert = opts.cert;
    if (Buffer.isBuffer(opts.key) || typeof opts.key === 'string') tls.key = opts.key;
    if (opts.servername !== undefined) tls.servername = opts.servername;
    return { headers, tls };
  }

  invalidate(): void {
    this.#tokenFile?.invalidate();
    // A fresh KubeConfig has a fresh exec-credential cache (and re-reads the kubeconfig).
    try {
      this.#kc = this.#load();
    } catch {
      // Keep the previous configuration; the next request reports the real failure.
    }
  }
}

function staticTls(kc: KubeConfig): KubeTlsOptions {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const tls: KubeTlsOptions = { rejectUnauthorized: cluster?.skipTLSVerify !== true };
  const buf = (file: string | undefined, data: string | undefined): Buffer | undefined => {
    if (file !== undefined && file !== null && file !== '') return readFileSync(file);
    if (data !== undefined && data !== null && data !== '') return Buffer.from(data, 'base64');
    return undefined;
  };
  try {
    const ca = buf(cluster?.caFile, cluster?.caData);
    if (ca !== undefined) tls.ca = ca;
    const cert = buf(user?.certFile, user?.certData);
    if (cert !== undefined) tls.cert = cert;
    const key = buf(user?.keyFile, user?.keyData);
    if (key !== undefined) tls.key = key;
  } catch (err) {
    throw fail(`cannot read TLS files: ${(err as Error).message}`, err);
  }
  if (cluster?.tlsServerName !== undefined && cluster.tlsServerName !== null && cluster.tlsServerName !== '') tls.servername = cluster.tlsServerName;
  return tls;
}
