import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ExecCredentialPlugin, type ExecCredentialResult } from './exec-credential.ts';
import { kubeCredentialsError, readKubeconfig } from './kubeconfig.ts';
import type { KubeconfigSelection } from './kubeconfig.ts';

/** Where the agent's API-server credentials come from (a subset of `AgentOptions.kubernetes`). */
export interface KubeCredentialsOptions {
  /** Kubeconfig file; its current context is used. */
  kubeconfig?: string;
  /** Use the pod's service account (`KUBERNETES_SERVICE_HOST`/`_PORT`, token and CA under `/var/run/secrets/kubernetes.io/serviceaccount`). */
  inCluster: boolean;
  /** Prefix of the service-account directory (tests point it at a temp dir). Default `''`. */
  serviceAccountPathPrefix?: string;
  /** Time an exec credential plugin may run before it is killed, in ms. Default `30_000`. */
  execTimeoutMs?: number;
  /**
   * How long a token, CA or client-certificate file is used as last read
   * before it is checked again (one `stat`, shared by the requests waiting
   * for it), in ms; a `401` checks at once. Default `1_000`; `0` checks on
   * every request.
   */
  fileRecheckMs?: number;
}

/** Default of {@link KubeCredentialsOptions.fileRecheckMs}. */
export const DEFAULT_FILE_RECHECK_MS = 1_000;

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

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

type Source = { kind: 'in-cluster'; prefix: string } | { kind: 'kubeconfig'; files: string[]; skipMissing: boolean };

/**
 * Loads the agent's API-server credentials: `inCluster` → the pod's service
 * account; else `kubeconfig` → that file's current context; else kubectl's
 * defaults: every file of `$KUBECONFIG` (merged, see {@link readKubeconfig}),
 * else `~/.kube/config`, else a service account if its token file exists.
 * Returns {@link NOT_CONFIGURED} when none of these exists.
 *
 * Throws `AgentError` `PT_ERR_KUBE_CREDENTIALS` when the configuration exists
 * but cannot be used (unreadable file, no current context, bad server URL,
 * legacy `auth-provider`). Messages name fields and files, never secrets.
 */
export function loadKubeCredentials(o: KubeCredentialsOptions): KubeCredentials | typeof NOT_CONFIGURED {
  const source = pickSource(o);
  if (source === NOT_CONFIGURED) return NOT_CONFIGURED;
  const recheckMs = o.fileRecheckMs ?? DEFAULT_FILE_RECHECK_MS;
  const load = (): Setup =>
    source.kind === 'in-cluster' ? inClusterSetup(source.prefix, recheckMs) : kubeconfigSetup(readKubeconfig(source.files, source.skipMissing), o, recheckMs);
  return new Credentials(load(), load);
}

/**
 * The configured source. The environment is read here (not by the CLI)
 * because these are kubectl's and the kubelet's own conventions: the
 * service-account variables are injected into every pod.
 */
function pickSource(o: KubeCredentialsOptions): Source | typeof NOT_CONFIGURED {
  const prefix = o.serviceAccountPathPrefix ?? '';
  if (o.inCluster) return { kind: 'in-cluster', prefix };
  if (o.kubeconfig !== undefined && o.kubeconfig !== '') return { kind: 'kubeconfig', files: [o.kubeconfig], skipMissing: false };
  const env = process.env.KUBECONFIG ?? '';
  const files = env.split(delimiter).filter((f) => f !== '');
  if (files.length > 0) return { kind: 'kubeconfig', files, skipMissing: true };
  const home = process.env.HOME ?? homedir();
  const file = join(home, '.kube', 'config');
  if (home !== '' && existsSync(file)) return { kind: 'kubeconfig', files: [file], skipMissing: false };
  if (existsSync(`${prefix}${SERVICE_ACCOUNT_DIR}/token`)) return { kind: 'in-cluster', prefix };
  return NOT_CONFIGURED;
}

/** A file read again whenever it changes; TLS material is a fixed buffer or one of these. */
type Material = Buffer | WatchedFile;

/** Everything one request needs, as loaded. */
interface Setup {
  source: 'in-cluster' | 'kubeconfig';
  serverUrl: URL;
  tls: { rejectUnauthorized: boolean; servername?: string; ca?: Material; cert?: Material; key?: Material };
  /** Impersonation headers (lower-case names). */
  headers: Record<string, string>;
  /** Static `Authorization` value (`Bearer …` or `Basic …`). */
  authorization?: string;
  tokenFile?: WatchedFile;
  exec?: ExecCredentialPlugin;
}

function inClusterSetup(prefix: string, recheckMs: number): Setup {
  const host = process.env.KUBERNETES_SERVICE_HOST ?? '';
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '';
  if (host === '' || port === '')
    throw kubeCredentialsError('in-cluster service account unusable: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT are not set');
  // Always TLS, as client-go's InClusterConfig.
  const serverUrl = parseServer(`https://${isIPv6(host) ? `[${host}]` : host}:${port}`, 'in-cluster service account');
  const dir = `${prefix}${SERVICE_ACCOUNT_DIR}`;
  try {
    return {
      source: 'in-cluster',
      serverUrl,
      headers: {},
      tls: { rejectUnauthorized: true, ca: new WatchedFile(`${dir}/ca.crt`, recheckMs) },
      tokenFile: new WatchedFile(`${dir}/token`, recheckMs),
    };
  } catch (err) {
    throw kubeCredentialsError(`in-cluster service account unusable: ${(err as Error).message}`, err);
  }
}

function kubeconfigSetup(k: KubeconfigSelection, o: KubeCredentialsOptions, recheckMs: number): Setup {
  const { cluster, user } = k;
  const where = `cluster "${cluster.name}"`;
  const s: Setup = {
    source: 'kubeconfig',
    serverUrl: parseServer(cluster.server, where),
    headers: { ...user.impersonation },
    tls: { rejectUnauthorized: !cluster.insecureSkipTlsVerify },
  };
  if (cluster.tlsServerName !== undefined) s.tls.servername = cluster.tlsServerName;
  try {
    const ca = material(cluster.caFile, cluster.caData, recheckMs);
    if (ca !== undefined) s.tls.ca = ca;
    const cert = material(user.certFile, user.certData, recheckMs);
    if (cert !== undefined) s.tls.cert = cert;
    const key = material(user.keyFile, user.keyData, recheckMs);
    if (key !== undefined) s.tls.key = key;
    if (user.tokenFile !== undefined) s.tokenFile = new WatchedFile(user.tokenFile, recheckMs);
  } catch (err) {
    throw kubeCredentialsError(`context "${k.context}": cannot read a referenced file: ${(err as Error).message}`, err);
  }
  if (user.token !== undefined) s.authorization = `Bearer ${user.token}`;
  else if (user.username !== undefined) s.authorization = `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}`;
  if (user.exec !== undefined) s.exec = new ExecCredentialPlugin(user.exec, cluster, o.execTimeoutMs === undefined ? {} : { timeoutMs: o.execTimeoutMs });
  return s;
}

function parseServer(server: string, where: string): URL {
  let url: URL;
  try {
    url = new URL(server);
  } catch (err) {
    throw kubeCredentialsError(`${where}: invalid server URL`, err);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw kubeCredentialsError(`${where}: server must be https:// or http://`);
  return new URL(url.origin);
}

/** A file (read now, so a missing one fails the load) or inline data; the file wins, as in kubectl. */
function material(file: string | undefined, data: Buffer | undefined, recheckMs: number): Material | undefined {
  if (file !== undefined) return new WatchedFile(file, recheckMs);
  return data;
}

/**
 * A file re-read whenever it changes (size, mtime or inode — kubelet rotates
 * projected tokens by swapping a symlink). It is checked with one `stat` once
 * its last check is `recheckMs` old (0: on every read): the requests of that
 * moment share the check, the others use the content as last read without a
 * wait. Two `stat`s per request (token and CA in a pod) cost ~19 µs of CPU:
 * a fifth of what the agent spends on a small request. Read once on
 * construction so a missing file fails the load.
 */
class WatchedFile {
  readonly path: string;
  readonly #recheckMs: number;
  #sig: string;
  #data: Buffer;
  /** performance.now() of the last check. */
  #checkedAt: number;
  #checking: Promise<Buffer> | undefined;

  constructor(path: string, recheckMs: number) {
    this.path = path;
    this.#recheckMs = recheckMs;
    const s = statSync(path);
    this.#data = readFileSync(path);
    this.#sig = signature(s);
    this.#checkedAt = performance.now();
  }

  /** The content as read at load or at the last change. */
  get current(): Buffer {
    return this.#data;
  }

  /** The content: as last read while the last check is recent, else (a promise) after a check. */
  read(): Buffer | Promise<Buffer> {
    if (performance.now() - this.#checkedAt < this.#recheckMs) return this.#data;
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #check(): Promise<Buffer> {
    const sig = signature(await stat(this.path));
    if (sig !== this.#sig) {
      this.#data = await readFile(this.path);
      this.#sig = sig;
    }
    this.#checkedAt = performance.now();
    return this.#data;
  }

  /** The next read checks the file and reads it again, whatever its signature. */
  invalidate(): void {
    this.#sig = '';
    this.#checkedAt = Number.NEGATIVE_INFINITY;
  }
}

function signature(s: { ino: number; size: number; mtimeMs: number }): string {
  return `${String(s.ino)}:${String(s.size)}:${String(s.mtimeMs)}`;
}

/** What one request's credentials are made of: the setup, the files' contents, an exec plugin's credential. */
interface Parts {
  setup: Setup;
  ca: Buffer | undefined;
  cert: Buffer | undefined;
  key: Buffer | undefined;
  token: Buffer | undefined;
  exec: ExecCredentialResult | undefined;
}

/** The same setup, the very same buffers and the same plugin credential object. */
function sameParts(a: Parts, b: Parts): boolean {
  return a.setup === b.setup && a.ca === b.ca && a.cert === b.cert && a.key === b.key && a.token === b.token && a.exec === b.exec;
}

function readMaterial(m: Material | undefined): Buffer | undefined | Promise<Buffer> {
  return m instanceof WatchedFile ? m.read() : m;
}

/**
 * One request's credentials from the setup, the files' contents and an exec
 * plugin's credential: the plugin's client certificate replaces the
 * configured one; a static token, then a token file, win over the plugin's
 * token (client-go's rule).
 */
function assemble({ setup: s, ca, cert, key, token, exec }: Parts): ResolvedCredentials {
  const tls: KubeTlsOptions = { rejectUnauthorized: s.tls.rejectUnauthorized };
  if (s.tls.servername !== undefined) tls.servername = s.tls.servername;
  if (ca !== undefined) tls.ca = ca;
  if (cert !== undefined) tls.cert = cert;
  if (key !== undefined) tls.key = key;
  if (exec?.cert !== undefined && exec.key !== undefined) {
    tls.cert = exec.cert;
    tls.key = exec.key;
  }
  const headers: Record<string, string> = { ...s.headers };
  if (exec?.token !== undefined) headers.authorization = `Bearer ${exec.token}`;
  if (s.authorization !== undefined) headers.authorization = s.authorization;
  if (token !== undefined) headers.authorization = bearer(token);
  // Frozen: the same answer serves every request until something in it changes.
  return Object.freeze({ headers: Object.freeze(headers), tls: Object.freeze(tls) });
}

function bearer(token: Buffer): string {
  return `Bearer ${token.toString('utf8').trim()}`;
}

class Credentials implements KubeCredentials {
  readonly serverUrl: URL;
  readonly source: 'in-cluster' | 'kubeconfig';
  readonly tlsOptions: KubeTlsOptions;
  readonly #load: () => Setup;
  #s: Setup;
  /** The last answer, and what it was made of (see resolve). */
  #last: { parts: Parts; resolved: ResolvedCredentials } | undefined;

  constructor(setup: Setup, load: () => Setup) {
    this.serverUrl = setup.serverUrl;
    this.source = setup.source;
    this.#s = setup;
    this.#load = load;
    const now = (m: Material | undefined): Buffer | undefined => (m instanceof WatchedFile ? m.current : m);
    // As configured: the files as read at load, no exec plugin's certificate.
    this.tlsOptions = assemble({ setup, ca: now(setup.tls.ca), cert: now(setup.tls.cert), key: now(setup.tls.key), token: undefined, exec: undefined }).tls;
  }

  async authHeaders(): Promise<Record<string, string>> {
    return (await this.resolve()).headers;
  }

  /**
   * With every file checked recently and an exec plugin's credential (if
   * any) still valid, this is the previous request's answer: the same object
   * while nothing in it changed (no allocation, and the upstream finds its
   * pool by identity).
   */
  resolve(): Promise<ResolvedCredentials> {
    const s = this.#s;
    const x = s.exec?.current();
    const ca = readMaterial(s.tls.ca);
    const cert = readMaterial(s.tls.cert);
    const key = readMaterial(s.tls.key);
    const token = s.tokenFile?.read();
    if ((s.exec !== undefined && x === undefined) || ca instanceof Promise || cert instanceof Promise || key instanceof Promise || token instanceof Promise) {
      return Promise.all([ca, cert, key, token, x ?? s.exec?.get()]).then(([c, ce, k, t, e]) =>
        this.#reused({ setup: s, ca: c, cert: ce, key: k, token: t, exec: e }),
      );
    }
    return Promise.resolve(this.#reused({ setup: s, ca, cert, key, token, exec: x }));
  }

  /** The previous answer when made of the same setup, buffers and plugin credential, else a new one, kept for the next request. */
  #reused(p: Parts): ResolvedCredentials {
    const last = this.#last;
    if (last !== undefined && sameParts(last.parts, p)) return last.resolved;
    const resolved = assemble(p);
    this.#last = { parts: p, resolved };
    return resolved;
  }

  invalidate(): void {
    const old = this.#s;
    old.exec?.invalidate();
    for (const f of [old.tokenFile, old.tls.ca, old.tls.cert, old.tls.key]) if (f instanceof WatchedFile) f.invalidate();
    // Re-read the configuration too (a 401 may follow an edited kubeconfig);
    // the upstream is bound to the first origin, so a moved server needs a restart.
    try {
      const next = this.#load();
      if (next.serverUrl.origin === this.serverUrl.origin) this.#s = next;
    } catch {
      // Keep the previous configuration; the next request reports the real failure.
    }
  }
}
