import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parseDocument } from 'yaml';
import { AgentError } from '../errors.ts';

/** Exec credential plugin API versions the agent speaks (v1alpha1 was removed in Kubernetes 1.24). */
export const execApiVersions = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'] as const;
export type ExecApiVersion = (typeof execApiVersions)[number];

/** The `cluster` of the current context, paths made absolute. */
export interface KubeconfigCluster {
  name: string;
  server: string;
  caFile?: string;
  /** Decoded `certificate-authority-data` (PEM). */
  caData?: Buffer;
  insecureSkipTlsVerify: boolean;
  tlsServerName?: string;
  /** `extensions[client.authentication.k8s.io/exec]`, handed to exec plugins with the cluster info. */
  execExtension?: unknown;
}

/** A `user.exec` credential plugin, `command` made absolute when it is a relative path. */
export interface KubeconfigExec {
  apiVersion: ExecApiVersion;
  command: string;
  args: string[];
  env: Array<{ name: string; value: string }>;
  provideClusterInfo: boolean;
  installHint?: string;
}

/** The `user` of the current context, paths made absolute. Every field is secret material or points to it: never log. */
export interface KubeconfigUser {
  token?: string;
  tokenFile?: string;
  certFile?: string;
  certData?: Buffer;
  keyFile?: string;
  keyData?: Buffer;
  username?: string;
  password?: string;
  /** `Impersonate-*` request headers from `as`, `as-uid`, `as-groups`, `as-user-extra` (lower-case names). */
  impersonation: Record<string, string>;
  exec?: KubeconfigExec;
}

/** What the current context of a kubeconfig resolves to. */
export interface KubeconfigSelection {
  context: string;
  cluster: KubeconfigCluster;
  user: KubeconfigUser;
}

type Obj = Record<string, unknown>;

/** A named entry (`clusters[]`, `users[]`, `contexts[]`) and the folder of the file that defined it. */
interface Named {
  body: Obj;
  dir: string;
  where: string;
}

/** `PT_ERR_KUBE_CREDENTIALS` with `message`; messages never quote values from the file. */
export function kubeCredentialsError(message: string, cause?: unknown): AgentError {
  return new AgentError('PT_ERR_KUBE_CREDENTIALS', message, cause === undefined ? undefined : { cause });
}

/**
 * Reads kubeconfig files and resolves their current context. With several
 * files (`$KUBECONFIG`), they are merged as kubectl does: the first
 * `current-context` set wins, and each context, cluster and user is taken
 * from the first file that defines that name. Missing files are skipped when
 * `skipMissing` (kubectl's rule for `$KUBECONFIG`), an error otherwise.
 * Relative paths (`certificate-authority`, `client-certificate`,
 * `client-key`, `tokenFile`, an exec `command` containing a slash) are
 * resolved against the folder of the file that holds them.
 *
 * Throws `PT_ERR_KUBE_CREDENTIALS` naming what is missing or malformed.
 */
export function readKubeconfig(files: readonly string[], skipMissing = false): KubeconfigSelection {
  const docs: Array<{ doc: Obj; file: string }> = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if (skipMissing && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw kubeCredentialsError(`cannot read kubeconfig ${file}: ${(err as Error).message}`, err);
    }
    docs.push({ doc: parseKubeconfig(text, file), file });
  }
  if (docs.length === 0) throw kubeCredentialsError(`none of the kubeconfig files exists: ${files.join(', ')}`);
  const current = docs.map((d) => d.doc['current-context']).find((c) => typeof c === 'string' && c !== '');
  if (typeof current !== 'string') throw kubeCredentialsError(`kubeconfig ${describeFiles(docs)}: no current-context is set`);
  const context = findNamed(docs, 'contexts', 'context', current);
  if (context === undefined) throw kubeCredentialsError(`kubeconfig ${describeFiles(docs)}: current-context "${current}" is not defined under contexts`);
  const clusterName = optString(context.body, 'cluster', context.where);
  if (clusterName === undefined) throw kubeCredentialsError(`${context.where}: context "${current}" names no cluster`);
  const cluster = findNamed(docs, 'clusters', 'cluster', clusterName);
  if (cluster === undefined) throw kubeCredentialsError(`kubeconfig ${describeFiles(docs)}: cluster "${clusterName}" of context "${current}" is not defined`);
  const userName = optString(context.body, 'user', context.where);
  let user: KubeconfigUser = { impersonation: {} };
  if (userName !== undefined) {
    const u = findNamed(docs, 'users', 'user', userName);
    if (u === undefined) throw kubeCredentialsError(`kubeconfig ${describeFiles(docs)}: user "${userName}" of context "${current}" is not defined`);
    user = toUser(u, userName);
  }
  return { context: current, cluster: toCluster(cluster, clusterName), user };
}

/**
 * Why `file` cannot give the agent its API-server credentials (not YAML, no
 * current context, a context naming an undefined cluster or user, a bad
 * server URL, a legacy auth-provider…), or undefined when it can. Reads and
 * resolves only: no exec plugin runs, nothing is dialed. For a start-time
 * check: the agent itself would start and answer every request 503.
 */
export function kubeconfigProblem(file: string): string | undefined {
  try {
    readKubeconfig([file]);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function describeFiles(docs: ReadonlyArray<{ file: string }>): string {
  return docs.map((d) => d.file).join(', ');
}

/**
 * Parses YAML (JSON is YAML). A syntax error is reported by position only:
 * the parser's own message quotes the offending line, which may hold a token.
 */
function parseKubeconfig(text: string, file: string): Obj {
  const doc = parseDocument(text, { prettyErrors: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = first.linePos?.[0];
    const at = pos === undefined ? '' : ` at line ${String(pos.line)}, column ${String(pos.col)}`;
    throw kubeCredentialsError(`kubeconfig ${file} is not valid YAML (${first.code}${at})`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (!isObj(value)) throw kubeCredentialsError(`kubeconfig ${file} is not a YAML mapping`);
  return value;
}

function findNamed(docs: ReadonlyArray<{ doc: Obj; file: string }>, list: string, key: string, name: string): Named | undefined {
  for (const { doc, file } of docs) {
    const entries = doc[list];
    if (entries === undefined || entries === null) continue;
    if (!Array.isArray(entries)) throw kubeCredentialsError(`kubeconfig ${file}: ${list} must be a list`);
    for (const [i, entry] of entries.entries()) {
      if (!isObj(entry) || entry.name !== name) continue;
      const where = `kubeconfig ${file} ${list}[${String(i)}]`;
      const body = entry[key] ?? {};
      if (!isObj(body)) throw kubeCredentialsError(`${where}.${key} must be a mapping`);
      return { body, dir: dirname(file), where: `${where}.${key}` };
    }
  }
  return undefined;
}

function toCluster(n: Named, name: string): KubeconfigCluster {
  const b = n.body;
  const server = optString(b, 'server', n.where);
  if (server === undefined) throw kubeCredentialsError(`${n.where}: cluster "${name}" has no server`);
  const c: KubeconfigCluster = { name, server, insecureSkipTlsVerify: optBool(b, 'insecure-skip-tls-verify', n.where) };
  const caFile = optString(b, 'certificate-authority', n.where);
  if (caFile !== undefined) c.caFile = absolute(n.dir, caFile);
  const caData = optBase64(b, 'certificate-authority-data', n.where);
  if (caData !== undefined) c.caData = caData;
  const sni = optString(b, 'tls-server-name', n.where);
  if (sni !== undefined) c.tlsServerName = sni;
  const ext = b.extensions;
  if (Array.isArray(ext)) {
    const found: unknown = ext.find((e) => isObj(e) && e.name === 'client.authentication.k8s.io/exec');
    if (isObj(found) && found.extension !== undefined) c.execExtension = found.extension;
  }
  return c;
}

function toUser(n: Named, name: string): KubeconfigUser {
  const b = n.body;
  const provider = b['auth-provider'];
  if (provider !== undefined && provider !== null) {
    const pname = isObj(provider) && typeof provider.name === 'string' ? provider.name : 'unnamed';
    throw kubeCredentialsError(
      `${n.where}: user "${name}" uses auth-provider "${pname}", which the agent does not support; use an exec credential plugin instead (e.g. gke-gcloud-auth-plugin, kubelogin)`,
    );
  }
  const u: KubeconfigUser = { impersonation: impersonation(b, n.where) };
  const setString = (field: 'token' | 'username' | 'password', key: string): void => {
    const v = optString(b, key, n.where);
    if (v !== undefined) u[field] = v;
  };
  const setPath = (field: 'tokenFile' | 'certFile' | 'keyFile', key: string): void => {
    const v = optString(b, key, n.where);
    if (v !== undefined) u[field] = absolute(n.dir, v);
  };
  setString('token', 'token');
  setString('username', 'username');
  setString('password', 'password');
  setPath('tokenFile', 'tokenFile');
  if (u.tokenFile === undefined) setPath('tokenFile', 'token-file');
  setPath('certFile', 'client-certificate');
  setPath('keyFile', 'client-key');
  const certData = optBase64(b, 'client-certificate-data', n.where);
  if (certData !== undefined) u.certData = certData;
  const keyData = optBase64(b, 'client-key-data', n.where);
  if (keyData !== undefined) u.keyData = keyData;
  if ((u.token !== undefined || u.tokenFile !== undefined) && u.username !== undefined) {
    throw kubeCredentialsError(`${n.where}: user "${name}" sets both a token and username/password; only one is allowed`);
  }
  if (isObj(b.exec)) u.exec = toExec(b.exec, n.dir, `${n.where}.exec`);
  else if (b.exec !== undefined && b.exec !== null) throw kubeCredentialsError(`${n.where}.exec must be a mapping`);
  return u;
}

function toExec(e: Obj, dir: string, where: string): KubeconfigExec {
  const apiVersion = optString(e, 'apiVersion', where);
  if (!execApiVersions.includes(apiVersion as ExecApiVersion)) {
    throw kubeCredentialsError(`${where}: apiVersion must be one of ${execApiVersions.join(', ')}`);
  }
  const command = optString(e, 'command', where);
  if (command === undefined) throw kubeCredentialsError(`${where}: command is missing`);
  const args = e.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw kubeCredentialsError(`${where}.args must be a list of strings`);
  const env = e.env ?? [];
  if (!Array.isArray(env) || !env.every((v) => isObj(v) && typeof v.name === 'string' && typeof v.value === 'string')) {
    throw kubeCredentialsError(`${where}.env must be a list of {name, value} strings`);
  }
  // kubectl's rule: a bare name is looked up on PATH, a relative path is relative to the kubeconfig.
  const x: KubeconfigExec = {
    apiVersion: apiVersion as ExecApiVersion,
    command: command.includes('/') ? absolute(dir, command) : command,
    args: args as string[],
    env: (env as Obj[]).map((v) => ({ name: v.name as string, value: v.value as string })),
    provideClusterInfo: optBool(e, 'provideClusterInfo', where),
  };
  const hint = optString(e, 'installHint', where);
  if (hint !== undefined) x.installHint = hint;
  return x;
}

/**
 * Impersonation headers. The credentials hand out one value per header name,
 * so several `as-groups` or several values of one `as-user-extra` key are
 * refused rather than silently dropped.
 */
function impersonation(b: Obj, where: string): Record<string, string> {
  const h: Record<string, string> = {};
  const as = optString(b, 'as', where);
  if (as !== undefined) h['impersonate-user'] = as;
  const uid = optString(b, 'as-uid', where);
  if (uid !== undefined) h['impersonate-uid'] = uid;
  const groups = b['as-groups'];
  if (Array.isArray(groups) && groups.length > 0) {
    if (groups.length > 1 || typeof groups[0] !== 'string') throw kubeCredentialsError(`${where}: as-groups with more than one group is not supported`);
    h['impersonate-group'] = groups[0];
  }
  const extra = b['as-user-extra'];
  if (isObj(extra)) {
    for (const [key, values] of Object.entries(extra)) {
      const list: unknown[] = Array.isArray(values) ? values : [values];
      if (list.length !== 1 || typeof list[0] !== 'string') throw kubeCredentialsError(`${where}: as-user-extra "${key}" must have exactly one value`);
      // Header names carry the key percent-encoded (Kubernetes impersonation spec).
      h[`impersonate-extra-${encodeURIComponent(key).toLowerCase()}`] = list[0];
    }
  }
  if (h['impersonate-user'] === undefined && Object.keys(h).length > 0) {
    throw kubeCredentialsError(`${where}: impersonating groups, uid or extras requires "as" (the user)`);
  }
  return h;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function absolute(dir: string, p: string): string {
  return isAbsolute(p) ? p : join(dir, p);
}

/** A string field; numbers are accepted (an unquoted numeric token is still a token). Empty counts as absent. */
function optString(o: Obj, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw kubeCredentialsError(`${where}.${key} must be a string`);
}

function optBool(o: Obj, key: string, where: string): boolean {
  const v = o[key];
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  throw kubeCredentialsError(`${where}.${key} must be true or false`);
}

function optBase64(o: Obj, key: string, where: string): Buffer | undefined {
  const v = optString(o, key, where);
  return v === undefined ? undefined : Buffer.from(v, 'base64');
}
