import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** What {@link kubeconfigFor} puts in the kubeconfig. */
export interface KubeconfigSpec {
  /** The cluster's `server` URL, e.g. `https://127.0.0.1:8443/k8s/clusters/c1`. */
  server: string;
  /** Bearer token of the user. Default: none. */
  token?: string;
  /** `certificate-authority` file. */
  caFile?: string;
  /** `certificate-authority-data` (PEM; base64-encoded here). */
  caData?: string;
  /** `insecure-skip-tls-verify: true`. */
  insecure?: boolean;
  /** The context's namespace. Default none (kubectl's `default`). */
  namespace?: string;
  /** Name of cluster, user and context. Default `'test'`. */
  name?: string;
}

/** A one-context kubeconfig (YAML text) for `spec`. */
export function kubeconfigFor(spec: KubeconfigSpec): string {
  const name = spec.name ?? 'test';
  const cluster: Record<string, unknown> = { server: spec.server };
  if (spec.caFile !== undefined) cluster['certificate-authority'] = spec.caFile;
  if (spec.caData !== undefined) cluster['certificate-authority-data'] = Buffer.from(spec.caData).toString('base64');
  if (spec.insecure === true) cluster['insecure-skip-tls-verify'] = true;
  const user: Record<string, unknown> = {};
  if (spec.token !== undefined) user.token = spec.token;
  const context: Record<string, unknown> = { cluster: name, user: name };
  if (spec.namespace !== undefined) context.namespace = spec.namespace;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    preferences: {},
    clusters: [{ name, cluster }],
    users: [{ name, user }],
    contexts: [{ name, context }],
    'current-context': name,
  });
}

/** Options of {@link kubectl}: exactly one of `kubeconfig` (YAML text) or `kubeconfigFile`. */
export interface KubectlOptions {
  kubeconfig?: string;
  kubeconfigFile?: string;
  /** Kill kubectl after this long, in ms. Default 20_000. */
  timeoutMs?: number;
  /** The binary. Default `/usr/bin/kubectl`. */
  bin?: string;
}

/** What a kubectl run gave: exit code (-1 when killed by the timeout or a signal), output as text. */
export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

const LEAKY_ENV = /^(KUBECONFIG|KUBERNETES_.*|HTTPS?_PROXY|NO_PROXY|ALL_PROXY)$/i;

/**
 * Runs kubectl with only the given kubeconfig: `KUBECONFIG`, proxies and
 * `KUBERNETES_*` are removed from its environment, and `HOME` is a fresh
 * temporary directory (no `~/.kube` config or discovery cache from elsewhere).
 * Never rejects for a non-zero exit: the result says what happened.
 */
export async function kubectl(args: string[], opts: KubectlOptions): Promise<KubectlResult> {
  if ((opts.kubeconfig === undefined) === (opts.kubeconfigFile === undefined)) {
    throw new TypeError('kubectl: give exactly one of kubeconfig (text) or kubeconfigFile');
  }
  const home = mkdtempSync(join(tmpdir(), 'pipeops-testkit-kubectl-'));
  try {
    let file = opts.kubeconfigFile;
    if (file === undefined) {
      file = join(home, 'kubeconfig');
      writeFileSync(file, opts.kubeconfig ?? '', { mode: 0o600 });
    }
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!LEAKY_ENV.test(k)) env[k] = v;
    env.HOME = home;
    return await new Promise<KubectlResult>((resolve) => {
      execFile(
        opts.bin ?? '/usr/bin/kubectl',
        [`--kubeconfig=${file}`, ...args],
        { env, timeout: opts.timeoutMs ?? 20_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
          resolve({ code: err?.killed === true ? -1 : code, stdout, stderr });
        },
      );
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** kubectl's client version (`kubectl version --client -o json`), e.g. `{ major: 1, minor: 32, gitVersion: 'v1.32.4' }`. */
export async function kubectlClientVersion(
  opts: Pick<KubectlOptions, 'bin' | 'timeoutMs'> = {},
): Promise<{ major: number; minor: number; gitVersion: string }> {
  const res = await kubectl(['version', '--client', '-o', 'json'], { ...opts, kubeconfig: 'apiVersion: v1\nkind: Config\n' });
  if (res.code !== 0) throw new Error(`kubectl version --client failed (${res.code}): ${res.stderr}`);
  const v = (JSON.parse(res.stdout) as { clientVersion: { major: string; minor: string; gitVersion: string } }).clientVersion;
  return { major: Number(v.major), minor: Number.parseInt(v.minor, 10), gitVersion: v.gitVersion };
}

/**
 * The `--raw` argument that reaches `path` on a server whose kubeconfig URL has
 * a path prefix (`https://gw/k8s/clusters/c1`): kubectl before 1.34 ignores the
 * prefix for `get --raw` (kubernetes/kubectl#1676, fixed by
 * kubernetes/kubernetes#131165), so there the prefix is prepended by hand.
 */
export async function kubectlRawPath(serverUrl: string, path: string, opts: Pick<KubectlOptions, 'bin' | 'timeoutMs'> = {}): Promise<string> {
  const prefix = new URL(serverUrl).pathname.replace(/\/$/, '');
  const v = await kubectlClientVersion(opts);
  return v.major === 1 && v.minor < 34 ? `${prefix}${path}` : path;
}
