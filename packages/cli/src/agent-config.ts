import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { kubeconfigProblem, verifyAgentPolicy, type AgentOptions } from '@pipeops/tunnel-agent';
import { configError, loadConfig, unreadableFiles, type Schema } from './config-loader.ts';
import { parseLabels, type LogLevel } from './formats.ts';
import { tunnelConfigProblems, tunnelSchema, toMuxOptions, type TunnelConfig } from './tunnel-config.ts';
import { proxyFromEnv } from './proxy-env.ts';

/**
 * The agent's configuration schema (`pipeops-tunnel connect`): the original VM
 * agent's configuration reference key by key, plus `agent.log_level`,
 * `agent.listen_host`, `agent.shutdown_timeout`, `agent.idle_trim_after`, `pipeops.allow_insecure`, `pipeops.tls.ca_file` and
 * `pipeops.reconnect.max_interval`. Every key also reads `PIPEOPS_<SECTION>_<KEY>`.
 * config.example.yaml at the repository root documents each key.
 */
export const agentSchema = {
  agent: {
    id: { doc: 'Unique agent ID; a random UUID is generated at start when empty.', format: String, default: '' },
    name: { doc: 'Human-readable agent name; defaults to the host name.', format: String, default: '' },
    cluster_name: { doc: 'Cluster identifier the gateway routes runners to. Required.', format: 'required-string', default: '' },
    poll_interval: { doc: 'Interval between status reports to the gateway.', format: 'duration-ms', default: '30s' },
    port: { doc: 'Port of the /health, /ready, /metrics listener (0 = ephemeral).', format: 'port', default: 8080 },
    listen_host: { doc: 'Address the health listener binds.', format: String, default: '0.0.0.0' },
    debug: { doc: 'Debug logging (same as log_level: debug).', format: 'flag', default: false },
    log_level: { doc: 'Log level: fatal, error, warn, info, debug, trace, silent.', format: 'log-level', default: 'info' },
    shutdown_timeout: { doc: 'On SIGTERM/SIGINT, how long open streams get to finish before the tunnel is closed.', format: 'duration-ms', default: '10s' },
    idle_trim_after: {
      doc: 'After this long without a runner stream, give unused memory back (one full garbage collection); 0s = never.',
      format: 'duration-ms',
      default: '10s',
    },
    labels: { doc: 'Key-value labels reported to the gateway. Env: k=v,k2=v2 or a JSON object.', format: 'string-map', default: {}, env: false },
  },
  pipeops: {
    api_url: { doc: 'Gateway URL; https:// is dialed as wss://. Required.', format: 'tunnel-url', default: '' },
    token: { doc: 'Agent token. Required. Never logged.', format: 'required-string', default: '', sensitive: true },
    timeout: { doc: 'Dial and handshake timeout.', format: 'duration-ms', default: '30s' },
    allow_insecure: { doc: 'Permit http:// and ws:// API URLs (development only).', format: 'flag', default: false },
    tls: {
      enabled: { doc: 'TLS to the gateway; false permits http:// and ws:// API URLs (development only).', format: 'flag', default: true },
      insecure_skip_verify: { doc: "Skip verification of the gateway's certificate (development only).", format: 'flag', default: false },
      ca_file: { doc: "PEM file of CA certificates trusted for the gateway's certificate, added to the system ones.", format: String, default: '' },
    },
    reconnect: {
      enabled: { doc: 'Reconnect after the connection drops.', format: 'flag', default: true },
      max_attempts: { doc: 'Consecutive failed attempts before giving up with exit code 4 (0 = never give up).', format: 'nat', default: 10 },
      interval: { doc: 'First reconnect delay; doubles with jitter after each failure.', format: 'duration-ms', default: '5s' },
      max_interval: { doc: 'Upper bound of the reconnect delay.', format: 'duration-ms', default: '1m' },
    },
  },
  tunnel: tunnelSchema,
  kubernetes: {
    kubeconfig: { doc: 'Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config) when not in cluster.', format: String, default: '' },
    in_cluster: { doc: "Use the pod's service account.", format: 'flag', default: false },
    namespace: { doc: 'Default namespace.', format: String, default: 'pipeops-system' },
    access_as: {
      doc: "Who runner requests act as at the API server: agent (the agent's own credentials) or runner (impersonated as pipeops:runner:<id>, groups pipeops:runners and the runner's groups; needs the impersonate verb).",
      format: 'access-as',
      default: 'agent',
    },
  },
  policy: {
    read_only: {
      doc: "The cluster owner's policy: only get, list and watch (and GET on non-resource paths); no exec, attach, port-forward or proxy.",
      format: 'flag',
      default: false,
    },
    deny_subresources: { doc: 'Subresources refused, e.g. [exec, attach, portforward, proxy]. Env: comma-separated.', format: 'name-list', default: [] },
    deny_resources: {
      doc: 'Resources refused in every namespace, e.g. [secrets]; resource.group for one API group. Env: comma-separated.',
      format: 'name-list',
      default: [],
    },
    namespaces: {
      doc: 'Namespaces runners may reach (empty: all); when set, cluster-scoped writes and all-namespace requests are refused. Env: comma-separated.',
      format: 'name-list',
      default: [],
    },
  },
  audit: {
    file: { doc: 'JSON-lines file for the audit records (one per runner request); empty: the log stream.', format: String, default: '' },
  },
} as unknown as Schema;

/** The validated agent configuration (durations in ms). */
export interface AgentConfig {
  agent: {
    id: string;
    name: string;
    cluster_name: string;
    poll_interval: number;
    port: number;
    listen_host: string;
    debug: boolean;
    log_level: LogLevel;
    shutdown_timeout: number;
    idle_trim_after: number;
    labels: Record<string, string>;
  };
  pipeops: {
    api_url: string;
    token: string;
    timeout: number;
    allow_insecure: boolean;
    tls: { enabled: boolean; insecure_skip_verify: boolean; ca_file: string };
    reconnect: { enabled: boolean; max_attempts: number; interval: number; max_interval: number };
  };
  tunnel: TunnelConfig;
  kubernetes: { kubeconfig: string; in_cluster: boolean; namespace: string; access_as: 'agent' | 'runner' };
  policy: { read_only: boolean; deny_subresources: string[]; deny_resources: string[]; namespaces: string[] };
  audit: { file: string };
}

/** Flags of `pipeops-tunnel connect`, as parsed. */
export interface ConnectFlags {
  config?: string | undefined;
  'pipeops-url'?: string | undefined;
  token?: string | undefined;
  'cluster-name'?: string | undefined;
  port?: string | undefined;
  kubeconfig?: string | undefined;
  'in-cluster'?: boolean | undefined;
  'access-as'?: string | undefined;
  'log-level'?: string | undefined;
  debug?: boolean | undefined;
}

const hints: Record<string, string> = {
  'pipeops.api_url': 'set pipeops.api_url in the config file, PIPEOPS_PIPEOPS_API_URL or --pipeops-url',
  'pipeops.token': 'set pipeops.token in the config file, PIPEOPS_PIPEOPS_TOKEN or --token',
  'agent.cluster_name': 'set agent.cluster_name in the config file, PIPEOPS_AGENT_CLUSTER_NAME or --cluster-name',
};

/**
 * Loads and validates the agent configuration: flags > environment > file > defaults.
 * Fills `agent.id` (random UUID) and `agent.name` (host name) when empty.
 * @throws CliError PT_ERR_CLI_CONFIG naming each bad key, or PT_ERR_CLI_CONFIG_FILE.
 */
export function loadAgentConfig(flags: ConnectFlags, env: Record<string, string | undefined>): AgentConfig {
  const conf = loadConfig({
    schema: agentSchema,
    file: flags.config,
    env,
    overrides: {
      'pipeops.api_url': flags['pipeops-url'],
      'pipeops.token': flags.token,
      'agent.cluster_name': flags['cluster-name'],
      'agent.port': flags.port,
      'kubernetes.kubeconfig': flags.kubeconfig,
      'kubernetes.in_cluster': flags['in-cluster'] === true ? true : undefined,
      'kubernetes.access_as': flags['access-as'],
      'agent.log_level': flags['log-level'],
      'agent.debug': flags.debug === true ? true : undefined,
    },
    envHooks: { 'agent.labels': parseLabels },
    hints,
  });
  const config = conf.getProperties() as unknown as AgentConfig;
  verifyAgentConfig(config);
  if (config.agent.id === '') config.agent.id = randomUUID();
  if (config.agent.name === '') config.agent.name = hostname();
  return config;
}

/** Checks between keys that the schema cannot express. */
function verifyAgentConfig(c: AgentConfig): void {
  const problems: string[] = [];
  const url = new URL(c.pipeops.api_url);
  const plain = url.protocol === 'http:' || url.protocol === 'ws:';
  if (plain && !allowsInsecure(c)) {
    problems.push(`pipeops.api_url: ${url.protocol}// is not encrypted; use https:// or set pipeops.tls.enabled: false (development only)`);
  }
  if (c.pipeops.reconnect.interval > c.pipeops.reconnect.max_interval) {
    problems.push('pipeops.reconnect.max_interval: must not be shorter than pipeops.reconnect.interval');
  }
  if (c.pipeops.timeout === 0) problems.push('pipeops.timeout: must be greater than 0');
  if (c.agent.poll_interval === 0) problems.push('agent.poll_interval: must be greater than 0');
  problems.push(...tunnelConfigProblems(c.tunnel));
  const unreadable = unreadableFiles([
    ['pipeops.tls.ca_file', c.pipeops.tls.ca_file],
    ['kubernetes.kubeconfig', c.kubernetes.kubeconfig],
  ]);
  problems.push(...unreadable);
  // A kubeconfig that is there but unusable would start an agent answering every runner 503.
  if (c.kubernetes.kubeconfig !== '' && !unreadable.some((p) => p.startsWith('kubernetes.kubeconfig:'))) {
    const problem = kubeconfigProblem(c.kubernetes.kubeconfig);
    if (problem !== undefined) problems.push(`kubernetes.kubeconfig: ${problem}`);
  }
  try {
    verifyAgentPolicy(c.policy);
  } catch (err) {
    // The library names the key as policy.<key>; the message is the reason.
    problems.push((err as Error).message.replace(/^invalid agent option /, ''));
  }
  if (problems.length > 0) throw configError(problems);
}

function allowsInsecure(c: AgentConfig): boolean {
  return !c.pipeops.tls.enabled || c.pipeops.allow_insecure;
}

/** The effective log level: `debug: true` lowers info/warn/error/fatal to debug. */
export function effectiveLogLevel(level: LogLevel, debug: boolean): LogLevel {
  if (debug && ['info', 'warn', 'error', 'fatal'].includes(level)) return 'debug';
  return level;
}

/**
 * Maps the configuration to the agent library's options. The environment is
 * read here, and only here, for HTTPS_PROXY/NO_PROXY and KUBECONFIG.
 */
export function toAgentOptions(c: AgentConfig, env: Record<string, string | undefined>, version: string): AgentOptions {
  const kubeconfig = c.kubernetes.kubeconfig !== '' ? c.kubernetes.kubeconfig : env.KUBECONFIG;
  const proxy = proxyFromEnv(env);
  // The agent takes http(s) URLs; ws(s):// written in the config means the same endpoint.
  const apiUrl = c.pipeops.api_url.replace(/^ws(s?):/i, 'http$1:');
  return {
    apiUrl,
    token: c.pipeops.token,
    agentId: c.agent.id,
    name: c.agent.name,
    clusterName: c.agent.cluster_name,
    labels: { ...c.agent.labels },
    version,
    pollIntervalMs: c.agent.poll_interval,
    timeoutMs: c.pipeops.timeout,
    port: c.agent.port,
    listenHost: c.agent.listen_host,
    tls: {
      insecureSkipVerify: c.pipeops.tls.insecure_skip_verify,
      ...(c.pipeops.tls.ca_file !== '' ? { caFile: c.pipeops.tls.ca_file } : {}),
    },
    allowInsecureTransport: allowsInsecure(c),
    reconnect: {
      enabled: c.pipeops.reconnect.enabled,
      maxAttempts: c.pipeops.reconnect.max_attempts,
      intervalMs: c.pipeops.reconnect.interval,
      maxIntervalMs: c.pipeops.reconnect.max_interval,
    },
    kubernetes: {
      ...(kubeconfig !== undefined && kubeconfig !== '' ? { kubeconfig } : {}),
      inCluster: c.kubernetes.in_cluster,
      namespace: c.kubernetes.namespace,
      accessAs: c.kubernetes.access_as,
    },
    policy: verifyAgentPolicy(c.policy),
    ...(c.audit.file !== '' ? { audit: { file: c.audit.file } } : {}),
    mux: toMuxOptions(c.tunnel),
    ...(proxy !== undefined ? { proxy } : {}),
  };
}

/** The configuration as it may be logged: the token replaced. */
export function printableAgentConfig(c: AgentConfig): unknown {
  return { ...c, pipeops: { ...c.pipeops, token: '[Redacted]' } };
}
