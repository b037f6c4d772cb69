// The agent's side of the cluster, checked with the agent's own credentials
// loaded the agent's way (loadKubeCredentials: kubeconfig, service account,
// exec plugin): the credentials load, the API server answers /version and
// /readyz, and RBAC gives runners what they need — or, with
// `access_as: runner`, the agent may impersonate them.
import type { RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { loadKubeCredentials, NOT_CONFIGURED, RUNNERS_GROUP, runnerUserName, type KubeCredentials } from '@pipeops/tunnel-agent';
import type { CheckResult } from './report.ts';
import { describeError } from './gateway-route.ts';
import { allows, impersonable, missingForRunners, type PolicyNeeds, type ResourceRule } from './rbac-rules.ts';
import { nodeHttp } from '@pipeops/tunnel-protocol';

/** Where the credentials come from, as the agent's options say. */
export interface CredentialSource {
  /** Kubeconfig file (the config's, else `$KUBECONFIG`); undefined: kubectl's defaults. */
  kubeconfig: string | undefined;
  inCluster: boolean;
}

/** Loads the credentials and resolves them once (an exec plugin runs, a token file is read). `secrets`: what must never be printed. */
export async function checkCredentials(src: CredentialSource): Promise<{ check: CheckResult; credentials?: KubeCredentials; secrets: string[] }> {
  const base = { id: 'credentials', title: 'kube credentials' };
  const where = src.inCluster
    ? "the pod's service account"
    : src.kubeconfig !== undefined
      ? `kubeconfig ${src.kubeconfig}`
      : 'the default kubeconfig ($KUBECONFIG, ~/.kube/config)';
  const fix = src.inCluster
    ? 'run in a pod whose service account token is mounted (automountServiceAccountToken), or use a kubeconfig (kubernetes.kubeconfig)'
    : 'fix the kubeconfig named above (`kubectl --kubeconfig FILE config view` shows its current context), or use kubernetes.in_cluster: true in a pod';
  let loaded: ReturnType<typeof loadKubeCredentials>;
  try {
    loaded = loadKubeCredentials({ ...(src.kubeconfig !== undefined ? { kubeconfig: src.kubeconfig } : {}), inCluster: src.inCluster });
  } catch (err) {
    return { check: { ...base, status: 'fail', detail: `${where}: ${describeError(err)}`, fix }, secrets: [] };
  }
  if (loaded === NOT_CONFIGURED) {
    return {
      check: {
        ...base,
        status: 'fail',
        detail: 'no kubeconfig found and not in a cluster',
        fix: 'set kubernetes.kubeconfig (--kubeconfig, PIPEOPS_KUBERNETES_KUBECONFIG or KUBECONFIG), or kubernetes.in_cluster: true (--in-cluster) in a pod',
      },
      secrets: [],
    };
  }
  let headers: Record<string, string>;
  let clientCert = false;
  try {
    const resolved = await loaded.resolve();
    headers = resolved.headers;
    clientCert = resolved.tls.cert !== undefined;
  } catch (err) {
    return { check: { ...base, status: 'fail', detail: `${where}: cannot get a credential: ${describeError(err)}`, fix }, secrets: [] };
  }
  const authorization = headers.authorization;
  const secrets = authorization === undefined ? [] : [authorization, authorization.replace(/^\S+\s+/, '')];
  const auth =
    authorization?.startsWith('Bearer ') === true
      ? 'a bearer token'
      : authorization?.startsWith('Basic ') === true
        ? 'basic auth'
        : clientCert
          ? 'a client certificate'
          : undefined;
  const detail = `${where}: server ${loaded.serverUrl.origin}, ${auth ?? 'no credential'}${loaded.tlsOptions.rejectUnauthorized ? '' : ', insecure-skip-tls-verify'}`;
  if (auth === undefined) {
    return {
      check: {
        ...base,
        status: 'warn',
        detail: `${detail}: requests are anonymous`,
        fix: 'give the context a user with a token, a client certificate or an exec plugin',
      },
      credentials: loaded,
      secrets,
    };
  }
  return { check: { ...base, status: 'pass', detail }, credentials: loaded, secrets };
}

/** One request to the API server with the agent's credentials; the body read as text (at most 64 KiB). */
export async function kubeRequest(
  creds: KubeCredentials,
  o: { method?: string; path: string; body?: unknown; timeoutMs: number },
): Promise<{ status: number; body: string }> {
  const { headers, tls } = await creds.resolve();
  const url = new URL(o.path, creds.serverUrl);
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  const options: RequestOptions & { ca?: Buffer; cert?: Buffer | string; key?: Buffer | string; servername?: string; rejectUnauthorized?: boolean } = {
    method: o.method ?? 'GET',
    headers: {
      ...headers,
      accept: 'application/json',
      ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
    },
    agent: false,
    signal: AbortSignal.timeout(o.timeoutMs),
  };
  if (url.protocol === 'https:') {
    options.rejectUnauthorized = tls.rejectUnauthorized;
    if (tls.ca !== undefined) options.ca = tls.ca;
    if (tls.cert !== undefined) options.cert = tls.cert;
    if (tls.key !== undefined) options.key = tls.key;
    if (tls.servername !== undefined) options.servername = tls.servername;
  }
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : nodeHttp.request)(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < 65_536) chunks.push(c);
        size += c.length;
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(payload);
  });
}

/** A connection-level failure to the API server, as a failed check with its fix. */
function apiServerUnreachable(creds: KubeCredentials, err: unknown, timeoutMs: number): CheckResult {
  const e = err as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const text = `${code} ${String(e.message ?? '')}`;
  const server = creds.serverUrl.origin;
  const base = { id: 'apiserver', title: 'API server', status: 'fail' as const };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || code === 'ETIMEDOUT') {
    return {
      ...base,
      detail: `no answer from ${server} within ${String(timeoutMs)} ms`,
      fix: 'a firewall or NetworkPolicy drops the traffic: allow egress from the agent to the API server',
    };
  }
  if (/certificate|self[- ]signed|ERR_TLS|ERR_SSL|UNABLE_TO|DEPTH_ZERO|CERT_/i.test(text)) {
    return {
      ...base,
      detail: `TLS with ${server} failed: ${describeError(err)}`,
      fix: "the kubeconfig's certificate-authority (in a pod: the service account's ca.crt) must be the CA of the API server's certificate",
    };
  }
  return {
    ...base,
    detail: `cannot reach ${server}: ${describeError(err)}`,
    fix: 'check the server URL of the kubeconfig (in a pod: KUBERNETES_SERVICE_HOST/PORT), that the API server runs, and that egress to it is allowed',
  };
}

/** `GET /version` and `/readyz` with the agent's credentials, as the agent's own health check does. */
export async function checkApiServer(creds: KubeCredentials, timeoutMs: number): Promise<CheckResult> {
  const base = { id: 'apiserver', title: 'API server' };
  const server = creds.serverUrl.origin;
  const started = Date.now();
  let version: { status: number; body: string };
  let ready: { status: number; body: string };
  try {
    version = await kubeRequest(creds, { path: '/version', timeoutMs });
    ready = await kubeRequest(creds, { path: '/readyz', timeoutMs });
  } catch (err) {
    return apiServerUnreachable(creds, err, timeoutMs);
  }
  const ms = Date.now() - started;
  if (version.status === 401) {
    return {
      ...base,
      status: 'fail',
      detail: `${server} refused the agent's credentials (GET /version: 401 Unauthorized)`,
      fix: 'the token or client certificate is expired, revoked or for another cluster: renew the kubeconfig or the service-account token',
    };
  }
  if (version.status !== 200) {
    return {
      ...base,
      status: 'fail',
      detail: `${server} answered GET /version with ${String(version.status)}: ${firstLine(version.body)}`,
      fix: 'the agent needs get on the non-resource URLs /version and /readyz (deploy/kubernetes/agent.yaml; normally system:public-info-viewer grants them)',
    };
  }
  let gitVersion = '?';
  try {
    const v = (JSON.parse(version.body) as { gitVersion?: unknown }).gitVersion;
    if (typeof v === 'string') gitVersion = v;
  } catch {
    // not JSON: reported as '?'
  }
  // As the agent's health check: /readyz unserved or forbidden to this identity, /version answering is enough.
  if (ready.status >= 200 && ready.status < 300) return { ...base, status: 'pass', detail: `${server}: ${gitVersion}, /readyz ok (${String(ms)} ms)` };
  if (ready.status === 403 || ready.status === 404)
    return {
      ...base,
      status: 'pass',
      detail: `${server}: ${gitVersion}, /readyz answered ${String(ready.status)} (/version answering is enough) (${String(ms)} ms)`,
    };
  return {
    ...base,
    status: 'warn',
    detail: `${server}: ${gitVersion}, but /readyz answered ${String(ready.status)}: ${firstLine(ready.body)}`,
    fix: 'the API server says it is not ready: see its own health (/readyz?verbose) and logs',
  };
}

interface RulesReview {
  resourceRules: ResourceRule[];
  incomplete: boolean;
  evaluationError?: string;
}

/** `SelfSubjectRulesReview` in `namespace`: the rules, or a check saying why they could not be read. */
async function rulesReview(creds: KubeCredentials, namespace: string, timeoutMs: number, id: string, title: string): Promise<RulesReview | CheckResult> {
  let res: { status: number; body: string };
  try {
    res = await kubeRequest(creds, {
      method: 'POST',
      path: '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews',
      timeoutMs,
      body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace } },
    });
  } catch (err) {
    return { id, title, status: 'fail', detail: `SelfSubjectRulesReview failed: ${describeError(err)}`, fix: 'see the API server check above' };
  }
  if (res.status === 404)
    return {
      id,
      title,
      status: 'warn',
      detail: 'the API server does not serve SelfSubjectRulesReview (authorization.k8s.io/v1): not checked',
      fix: "nothing to do here; runners will see the API server's 403 if a right is missing",
    };
  if (res.status === 403)
    return {
      id,
      title,
      status: 'warn',
      detail: 'the agent may not create SelfSubjectRulesReviews: not checked',
      fix: 'every authenticated user normally may (ClusterRole system:basic-user); check that binding',
    };
  if (res.status !== 200 && res.status !== 201)
    return {
      id,
      title,
      status: 'warn',
      detail: `SelfSubjectRulesReview answered ${String(res.status)}: ${firstLine(res.body)}`,
      fix: 'see the API server check above',
    };
  const status = (JSON.parse(res.body) as { status?: { resourceRules?: ResourceRule[]; incomplete?: boolean; evaluationError?: string } }).status ?? {};
  return {
    resourceRules: status.resourceRules ?? [],
    incomplete: status.incomplete === true,
    ...(status.evaluationError !== undefined ? { evaluationError: status.evaluationError } : {}),
  };
}

/**
 * `access_as: agent`: runners act with the agent's RBAC, so it is compared
 * with what they need (deploy/kubernetes/agent.yaml's ClusterRole, less what
 * the policy refuses anyway). Fails when nothing can be read; warns, naming
 * each gap, when it is narrower.
 */
export async function checkRbac(creds: KubeCredentials, o: { namespace: string; policy: PolicyNeeds; timeoutMs: number }): Promise<CheckResult> {
  const base = { id: 'rbac', title: 'RBAC' };
  const review = await rulesReview(creds, o.namespace, o.timeoutMs, base.id, base.title);
  if ('status' in review) return review;
  const { missing, noReads, granted } = missingForRunners(review.resourceRules, o.policy);
  const note = review.incomplete
    ? ` (the API server says the list may be incomplete${review.evaluationError !== undefined ? `: ${review.evaluationError}` : ''})`
    : '';
  const scope = `in namespace ${o.namespace}${o.policy.read_only ? ' (policy.read_only: reads only)' : ''}`;
  if (noReads) {
    return {
      ...base,
      status: review.incomplete ? 'warn' : 'fail',
      detail: `the agent can neither get nor list anything ${scope}${note}`,
      fix: "bind the agent's identity to deploy/kubernetes/agent.yaml's ClusterRole (or a narrower one: `view` at least)",
    };
  }
  if (missing.length > 0) {
    return {
      ...base,
      status: 'warn',
      detail: `narrower than deploy/kubernetes/agent.yaml ${scope}${note}; missing:\n${missing.map((m) => `- ${m}`).join('\n')}`,
      fix: "runners get the API server's 403 for these. If that is intended, say so in the agent's policy (policy.read_only, policy.deny_subresources) so the agent refuses them itself; otherwise grant them as deploy/kubernetes/agent.yaml's ClusterRole does",
    };
  }
  return { ...base, status: 'pass', detail: `runners have what they need ${scope}: ${granted.join('; ')}${note}` };
}

/** `SelfSubjectAccessReview` of one impersonation (`users`/`groups`, `name`). */
async function mayImpersonate(creds: KubeCredentials, resource: 'users' | 'groups', name: string | undefined, timeoutMs: number): Promise<boolean | undefined> {
  const res = await kubeRequest(creds, {
    method: 'POST',
    path: '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    timeoutMs,
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { verb: 'impersonate', group: '', resource, ...(name !== undefined ? { name } : {}) } },
    },
  });
  if (res.status !== 200 && res.status !== 201) return undefined;
  return (JSON.parse(res.body) as { status?: { allowed?: boolean } }).status?.allowed === true;
}

/**
 * `access_as: runner`: the agent impersonates `pipeops:runner:<id>` with the
 * groups `pipeops:runners` and the runner's own (README, "Acting as the
 * runner"). The group is asked with a SelfSubjectAccessReview; the users it
 * may impersonate are read from the rules (they are per runner id, which only
 * the gateway's tokens file knows).
 */
export async function checkImpersonation(creds: KubeCredentials, o: { namespace: string; timeoutMs: number }): Promise<CheckResult> {
  const base = { id: 'impersonation', title: 'impersonation' };
  let group: boolean | undefined;
  let anyUser: boolean | undefined;
  try {
    group = await mayImpersonate(creds, 'groups', RUNNERS_GROUP, o.timeoutMs);
    anyUser = await mayImpersonate(creds, 'users', undefined, o.timeoutMs);
  } catch (err) {
    return { ...base, status: 'fail', detail: `SelfSubjectAccessReview failed: ${describeError(err)}`, fix: 'see the API server check above' };
  }
  const review = await rulesReview(creds, o.namespace, o.timeoutMs, base.id, base.title);
  const rules = 'status' in review ? undefined : review.resourceRules;
  const users = anyUser === true ? 'any' : rules !== undefined ? impersonable(rules, 'users') : undefined;
  const runnerUsers = users === undefined || users === 'any' ? users : users.filter((u) => u.startsWith(runnerUserName('')));
  const groups = rules !== undefined ? impersonable(rules, 'groups') : undefined;
  const groupOk = group ?? (rules !== undefined ? allows(rules, 'impersonate', '', 'groups', RUNNERS_GROUP) : undefined);
  if (groupOk === false) {
    return {
      ...base,
      status: 'fail',
      detail: `access_as: runner, but the agent may not impersonate the group ${RUNNERS_GROUP}: every runner request would get the API server's 403`,
      fix: `grant impersonate on groups with resourceNames [${RUNNERS_GROUP}, your runners' groups] (deploy/kubernetes/agent.yaml shows the rule)`,
    };
  }
  if (runnerUsers !== undefined && runnerUsers !== 'any' && runnerUsers.length === 0) {
    return {
      ...base,
      status: 'fail',
      detail: `access_as: runner, but the agent may impersonate no ${runnerUserName('<id>')} user: every runner request would get the API server's 403`,
      fix: `grant impersonate on users with resourceNames [${runnerUserName('<id>')} for each runner id] (deploy/kubernetes/agent.yaml shows the rule)`,
    };
  }
  if (groupOk === undefined || runnerUsers === undefined) {
    return {
      ...base,
      status: 'warn',
      detail: `access_as: runner; the API server did not answer the access reviews, so the impersonation rights (${RUNNERS_GROUP}, ${runnerUserName('<id>')}) were not checked`,
      fix: "nothing to do here; runners will see the API server's 403 if a right is missing",
    };
  }
  const who = runnerUsers === 'any' ? 'any user' : runnerUsers.join(', ');
  const otherGroups =
    groups === undefined
      ? ''
      : groups === 'any'
        ? '; any group'
        : groups.filter((g) => g !== RUNNERS_GROUP).length > 0
          ? `; groups also: ${groups.filter((g) => g !== RUNNERS_GROUP).join(', ')}`
          : '';
  return {
    ...base,
    status: 'pass',
    detail: `access_as: runner: may impersonate ${who} and the group ${RUNNERS_GROUP}${otherGroups} (each runner of the gateway's tokens file needs its user, and its groups:)`,
  };
}

function firstLine(body: string): string {
  try {
    const m = (JSON.parse(body) as { message?: unknown }).message;
    if (typeof m === 'string') return m.slice(0, 300);
  } catch {
    // not JSON
  }
  return body.trim().split('\n')[0]?.slice(0, 300) ?? '';
}
