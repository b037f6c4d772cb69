import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { KubeconfigCluster, KubeconfigExec } from './kubeconfig.ts';
import { kubeCredentialsError } from './kubeconfig.ts';

/** Default time an exec credential plugin may run, in ms. */
export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;

/** Most bytes read from a plugin's stdout (an ExecCredential is a few KiB). */
const MAX_STDOUT_BYTES = 1024 * 1024;
/** Most characters of a failing plugin's stderr quoted in the error. */
const MAX_STDERR_CHARS = 300;

/** What a plugin hands out: a bearer token, a client certificate, or both. Secret: never log. */
export interface ExecCredentialResult {
  token?: string;
  cert?: string;
  key?: string;
}

export interface ExecCredentialOptions {
  /** Kill the plugin and fail after this long, in ms. Default {@link DEFAULT_EXEC_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Clock, for expiry (tests). Default `Date.now`. */
  now?: () => number;
}

interface Cached {
  result: ExecCredentialResult;
  /** `undefined`: valid until {@link ExecCredentialPlugin.invalidate}. */
  expiresAtMs: number | undefined;
}

/**
 * A `client.authentication.k8s.io` exec credential plugin (v1 or v1beta1).
 * Run on first use, its answer cached until `status.expirationTimestamp` or
 * {@link invalidate} (the API server answered 401); concurrent callers share
 * one run. Never interactive: stdin is closed and `spec.interactive` is false.
 */
export class ExecCredentialPlugin {
  readonly #spec: KubeconfigExec;
  readonly #cluster: KubeconfigCluster;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #cached: Cached | undefined;
  #running: Promise<ExecCredentialResult> | undefined;
  /** Bumped by invalidate(): a run started before must not refill the cache. */
  #generation = 0;

  constructor(spec: KubeconfigExec, cluster: KubeconfigCluster, options: ExecCredentialOptions = {}) {
    this.#spec = spec;
    this.#cluster = cluster;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    this.#now = options.now ?? Date.now;
  }

  /** The cached credential while it is valid (the same object each time), else undefined: then {@link get} runs the plugin. */
  current(): ExecCredentialResult | undefined {
    const c = this.#cached;
    return c !== undefined && (c.expiresAtMs === undefined || this.#now() < c.expiresAtMs) ? c.result : undefined;
  }

  /** The current credential, running the plugin when nothing valid is cached. */
  get(): Promise<ExecCredentialResult> {
    const valid = this.current();
    if (valid !== undefined) return Promise.resolve(valid);
    if (this.#running !== undefined) return this.#running;
    const generation = this.#generation;
    const run = this.#run().then((cached) => {
      if (generation === this.#generation) this.#cached = cached;
      return cached.result;
    });
    this.#running = run;
    const clear = (): void => {
      if (this.#running === run) this.#running = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  /** Forgets the cached credential: the next {@link get} runs the plugin again. */
  invalidate(): void {
    this.#cached = undefined;
    this.#running = undefined;
    this.#generation += 1;
  }

  #name(): string {
    return `exec plugin "${this.#spec.command}"`;
  }

  async #run(): Promise<Cached> {
    const stdout = await this.#spawn();
    return this.#parse(stdout);
  }

  #spawn(): Promise<string> {
    // The agent's environment as kubectl would pass it, minus the agent's own
    // settings: PIPEOPS_PIPEOPS_TOKEN is no business of a credential plugin.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PIPEOPS_')) env[k] = v;
    for (const { name, value } of this.#spec.env) env[name] = value;
    env.KUBERNETES_EXEC_INFO = JSON.stringify(this.#execInfo());
    return new Promise((resolve, reject) => {
      const child = spawn(this.#spec.command, this.#spec.args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let outBytes = 0;
      let err = '';
      let failure: Error | undefined;
      const timer = setTimeout(() => {
        failure = kubeCredentialsError(`${this.#name()} did not finish within ${String(this.#timeoutMs)} ms`);
        child.kill('SIGKILL');
      }, this.#timeoutMs);
      child.stdout.on('data', (b: Buffer) => {
        outBytes += b.length;
        if (outBytes <= MAX_STDOUT_BYTES) out.push(b);
        else if (failure === undefined) {
          failure = kubeCredentialsError(`${this.#name()} printed more than ${String(MAX_STDOUT_BYTES)} bytes`);
          child.kill('SIGKILL');
        }
      });
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (s: string) => {
        err = (err + s).slice(-4 * MAX_STDERR_CHARS);
      });
      child.on('error', (e: NodeJS.ErrnoException) => {
        const hint = this.#spec.installHint === undefined ? '' : ` (${this.#spec.installHint.trim()})`;
        failure ??= kubeCredentialsError(`${this.#name()} could not be started: ${e.code ?? e.message}${hint}`, e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (failure !== undefined) reject(failure);
        else if (code !== 0) {
          const tail = err.trim().slice(-MAX_STDERR_CHARS);
          reject(
            kubeCredentialsError(
              `${this.#name()} failed (${code === null ? `signal ${String(signal)}` : `exit code ${String(code)}`})${tail === '' ? '' : `: ${tail}`}`,
            ),
          );
        } else resolve(Buffer.concat(out).toString('utf8'));
      });
    });
  }

  /** `KUBERNETES_EXEC_INFO`: the ExecCredential request; the cluster only with `provideClusterInfo`. */
  #execInfo(): Record<string, unknown> {
    const spec: Record<string, unknown> = { interactive: false };
    if (this.#spec.provideClusterInfo) {
      const c = this.#cluster;
      const cluster: Record<string, unknown> = { server: c.server };
      if (c.tlsServerName !== undefined) cluster['tls-server-name'] = c.tlsServerName;
      if (c.insecureSkipTlsVerify) cluster['insecure-skip-tls-verify'] = true;
      const ca = c.caData ?? readCaFile(c.caFile);
      if (ca !== undefined) cluster['certificate-authority-data'] = ca.toString('base64');
      if (c.execExtension !== undefined) cluster.config = c.execExtension;
      spec.cluster = cluster;
    }
    return { apiVersion: this.#spec.apiVersion, kind: 'ExecCredential', spec };
  }

  /** Validates the plugin's answer. Errors name the field, never its value. */
  #parse(stdout: string): Cached {
    let obj: unknown;
    try {
      obj = JSON.parse(stdout);
    } catch {
      throw kubeCredentialsError(`${this.#name()} did not print an ExecCredential as JSON`);
    }
    const o = (typeof obj === 'object' && obj !== null ? obj : {}) as Record<string, unknown>;
    if (o.kind !== 'ExecCredential') throw kubeCredentialsError(`${this.#name()} did not print an ExecCredential (kind)`);
    if (o.apiVersion !== this.#spec.apiVersion) {
      throw kubeCredentialsError(`${this.#name()} answered apiVersion ${JSON.stringify(o.apiVersion)}, the kubeconfig asks for ${this.#spec.apiVersion}`);
    }
    const status = (typeof o.status === 'object' && o.status !== null ? o.status : {}) as Record<string, unknown>;
    const str = (k: string): string | undefined => (typeof status[k] === 'string' && status[k] !== '' ? status[k] : undefined);
    const result: ExecCredentialResult = {};
    const token = str('token');
    const cert = str('clientCertificateData');
    const key = str('clientKeyData');
    if (token !== undefined) result.token = token;
    if ((cert === undefined) !== (key === undefined))
      throw kubeCredentialsError(`${this.#name()} returned only one of status.clientCertificateData and status.clientKeyData`);
    if (cert !== undefined && key !== undefined) {
      result.cert = cert;
      result.key = key;
    }
    if (token === undefined && cert === undefined) throw kubeCredentialsError(`${this.#name()} returned neither status.token nor a client certificate`);
    let expiresAtMs: number | undefined;
    const exp = status.expirationTimestamp;
    if (exp !== undefined && exp !== null) {
      expiresAtMs = typeof exp === 'string' ? Date.parse(exp) : Number.NaN;
      if (Number.isNaN(expiresAtMs)) throw kubeCredentialsError(`${this.#name()} returned an invalid status.expirationTimestamp`);
    }
    return { result, expiresAtMs };
  }
}

/** The CA file's bytes for the plugin's cluster info; a read failure is reported by the TLS setup, not here. */
function readCaFile(file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}
