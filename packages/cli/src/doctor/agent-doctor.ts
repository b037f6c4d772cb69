// `pipeops-tunnel doctor` on the agent's side: the configuration `connect`
// would run with (same sources, same validation), then the cluster side
// (credentials, API server, RBAC or impersonation) and the gateway side
// (proxy, DNS, TCP, TLS, clock, the token).
import { createSecureContext, getCACertificates } from 'node:tls';
import { loadCaTrust } from '@pipeops/tunnel-agent';
import { loadAgentConfig, toAgentOptions, type AgentConfig, type ConnectFlags } from '../agent-config.ts';
import { readConfigFile } from '../config-file.ts';
import { CliError } from '../errors.ts';
import { proxyFromEnv } from '../proxy-env.ts';
import { VERSION } from '../version.ts';
import { checkAgentToken } from './gateway-api.ts';
import { AGENT_WORDING, checkGatewayReach, skipped } from './gateway-checks.ts';
import { describeError } from './gateway-route.ts';
import { checkApiServer, checkCredentials, checkImpersonation, checkRbac } from './kube-checks.ts';
import type { CheckResult } from './report.ts';

/** Longest wait of one network step, in ms (less when `pipeops.timeout` is shorter). */
export const DOCTOR_STEP_TIMEOUT_MS = 10_000;

/** The checks' results, what must never be printed, and one line saying what was checked. */
export interface DoctorRun {
  checks: CheckResult[];
  secrets: string[];
  subject: string;
}

const KUBECONFIG_KEY = 'kubernetes.kubeconfig:';

/**
 * `connect`'s configuration. When the only problem is the kubeconfig, the
 * rest is loaded without it, so the other checks still run and the
 * credentials check reports the kubeconfig's problem in full.
 */
function loadConfigForDoctor(flags: ConnectFlags, env: Record<string, string | undefined>): { config?: AgentConfig; problems: string[] } {
  try {
    return { config: loadAgentConfig(flags, env), problems: [] };
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    const problems = err.message
      .split('\n')
      .slice(err.code === 'PT_ERR_CLI_CONFIG' ? 1 : 0)
      .map((l) => l.trim())
      .filter((l) => l !== '');
    if (!problems.every((p) => p.startsWith(KUBECONFIG_KEY))) return { problems };
    const kubeconfig = flags.kubeconfig ?? env.PIPEOPS_KUBERNETES_KUBECONFIG ?? fileKubeconfig(flags.config);
    try {
      const config = loadAgentConfig({ ...flags, kubeconfig: '' }, env);
      config.kubernetes.kubeconfig = kubeconfig ?? '';
      return { config, problems };
    } catch {
      return { problems };
    }
  }
}

function fileKubeconfig(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  const section = readConfigFile(file).kubernetes as { kubeconfig?: unknown } | undefined;
  return typeof section?.kubeconfig === 'string' ? section.kubeconfig : undefined;
}

/** Runs every agent-side check. */
export async function runAgentDoctor(flags: ConnectFlags, env: Record<string, string | undefined>): Promise<DoctorRun> {
  const secrets = [flags.token, env.PIPEOPS_PIPEOPS_TOKEN].filter((s): s is string => s !== undefined);
  const checks: CheckResult[] = [];
  const { config, problems } = loadConfigForDoctor(flags, env);
  if (config === undefined) {
    checks.push({
      id: 'config',
      title: 'configuration',
      status: 'fail',
      detail: problems.join('\n'),
      fix: 'fix each key named above (config.example.yaml documents every key; flags > PIPEOPS_* > --config file > defaults)',
    });
    checks.push(...skipped(['credentials', 'apiserver', 'rbac', 'proxy', 'dns', 'tcp', 'tls', 'clock', 'token'], 'needs a valid configuration'));
    return { checks, secrets, subject: 'agent (configuration invalid)' };
  }
  secrets.push(config.pipeops.token);
  const options = toAgentOptions(config, env, VERSION);
  const c = config;
  checks.push(
    problems.length > 0
      ? { id: 'config', title: 'configuration', status: 'fail', detail: problems.join('\n'), fix: 'see the kube credentials check below' }
      : {
          id: 'config',
          title: 'configuration',
          status: 'pass',
          detail: `cluster ${c.agent.cluster_name}, gateway ${c.pipeops.api_url}, access_as ${c.kubernetes.access_as}, namespace ${c.kubernetes.namespace}${c.policy.read_only ? ', policy.read_only' : ''}`,
        },
  );
  const subject = `agent of cluster ${c.agent.cluster_name}, gateway ${c.pipeops.api_url}`;
  const timeoutMs = Math.min(c.pipeops.timeout, DOCTOR_STEP_TIMEOUT_MS);

  // The cluster side.
  const creds = await checkCredentials({ kubeconfig: options.kubernetes.kubeconfig, inCluster: c.kubernetes.in_cluster });
  checks.push(creds.check);
  secrets.push(...creds.secrets);
  const rightsId = c.kubernetes.access_as === 'runner' ? 'impersonation' : 'rbac';
  if (creds.credentials === undefined) {
    checks.push(...skipped(['apiserver', rightsId], 'needs usable credentials'));
  } else {
    const api = await checkApiServer(creds.credentials, DOCTOR_STEP_TIMEOUT_MS);
    checks.push(api);
    if (api.status === 'fail') checks.push(...skipped([rightsId], 'needs the API server'));
    else if (rightsId === 'impersonation')
      checks.push(await checkImpersonation(creds.credentials, { namespace: c.kubernetes.namespace, timeoutMs: DOCTOR_STEP_TIMEOUT_MS }));
    else checks.push(await checkRbac(creds.credentials, { namespace: c.kubernetes.namespace, policy: c.policy, timeoutMs: DOCTOR_STEP_TIMEOUT_MS }));
  }

  // The gateway side.
  let trust: ReturnType<typeof loadCaTrust> | undefined;
  try {
    if (c.pipeops.tls.ca_file !== '') trust = loadCaTrust(c.pipeops.tls.ca_file);
  } catch (err) {
    checks.push({
      id: 'tls',
      title: 'TLS',
      status: 'fail',
      detail: describeError(err),
      fix: 'pipeops.tls.ca_file must be a readable PEM file of CA certificates',
    });
    checks.push(...skipped(['token'], 'needs a usable pipeops.tls.ca_file'));
    return { checks, secrets, subject };
  }
  const extra = env.NODE_EXTRA_CA_CERTS !== undefined && env.NODE_EXTRA_CA_CERTS !== '' ? ' + NODE_EXTRA_CA_CERTS' : '';
  const proxy = proxyFromEnv(env);
  for (const p of [proxy?.httpsProxy, proxy?.httpProxy]) if (p !== undefined) secrets.push(...proxySecrets(p));
  const reach = await checkGatewayReach({
    base: new URL(options.apiUrl),
    proxy,
    trust: trust?.context,
    trustLabel: trust !== undefined ? `pipeops.tls.ca_file ${c.pipeops.tls.ca_file} + system CAs${extra}` : `system CAs${extra}`,
    insecureSkipVerify: c.pipeops.tls.insecure_skip_verify,
    timeoutMs,
    wording: AGENT_WORDING,
  });
  checks.push(...reach.checks);
  if (!reach.connected || !reach.handshake) checks.push(...skipped(['token'], 'needs a connection to the gateway'));
  else if (!reach.trusted) checks.push(...skipped(['token'], "not sent: the gateway's certificate is not trusted"));
  else checks.push(await checkAgentToken(reach.route, { token: c.pipeops.token, cluster: c.agent.cluster_name, version: VERSION }));
  return { checks, secrets, subject };
}

/** Default CAs plus `pem`, for a runner's `--ca`. */
export function trustWith(pem: string): ReturnType<typeof createSecureContext> {
  return createSecureContext({ ca: [...getCACertificates('default'), pem] });
}

/** The password (and user:password) of a proxy URL, if it has one. */
export function proxySecrets(url: string): string[] {
  try {
    const u = new URL(url);
    if (u.password === '') return [];
    return [u.password, decodeURIComponent(u.password)];
  } catch {
    return [];
  }
}
