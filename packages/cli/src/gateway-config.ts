import { clusterAddressSuffixProblem, DEFAULT_CLUSTER_ADDRESS_SUFFIX } from '@pipeops/tunnel-protocol';
import { configError, loadConfig, unreadableFiles, type Schema } from './config-loader.ts';
import { parseHostPort, type LogLevel } from './formats.ts';
import { tunnelConfigProblems, tunnelSchema, type TunnelConfig } from './tunnel-config.ts';

/**
 * The gateway's configuration schema (`pipeops-tunnel gateway`). Every key
 * also reads `PIPEOPS_GATEWAY_<KEY>` (e.g. `PIPEOPS_GATEWAY_TLS_CERT`).
 * gateway.example.yaml at the repository root documents each key.
 */
export const gatewaySchema = {
  gateway: {
    listen: { doc: 'HOST:PORT the gateway listens on (port 0 = ephemeral).', format: 'host-port', default: '0.0.0.0:8443' },
    tls: {
      cert: { doc: 'PEM certificate chain file.', format: String, default: '' },
      key: { doc: 'PEM private key file.', format: String, default: '', sensitive: true },
    },
    tokens_file: { doc: 'YAML tokens file (agents, runners, admins); reloaded on change and on SIGHUP. Required.', format: 'required-string', default: '' },
    dev: { doc: 'Generate a self-signed CA and certificate at start; the CA is written to state_dir.', format: 'flag', default: false },
    allow_insecure: { doc: 'Serve plain HTTP when no certificate is configured (development and tests only).', format: 'flag', default: false },
    state_dir: { doc: 'Directory for generated files (the dev CA); default: a new directory under the system temp dir.', format: String, default: '' },
    drain_timeout: { doc: 'On SIGTERM/SIGINT, how long agents and open streams get to finish.', format: 'duration-ms', default: '30s' },
    handshake_timeout: { doc: "How long an agent's WebSocket upgrade and hello may take.", format: 'duration-ms', default: '10s' },
    log_level: { doc: 'Log level: fatal, error, warn, info, debug, trace, silent.', format: 'log-level', default: 'info' },
    tls_handshake_timeout: {
      doc: 'How long a client has from its TCP connection to the end of the TLS handshake; then the connection is closed.',
      format: 'duration-ms',
      default: '10s',
    },
    request_head_timeout: {
      doc: 'How long a client has to send a complete request head; then 408 and the connection is closed. Only the head: WATCH, logs -f and exec are never cut by it.',
      format: 'duration-ms',
      default: '30s',
    },
    max_connections: {
      doc: 'Open connections the gateway accepts at once (agents, runners, handshakes in progress); beyond it new connections are closed.',
      format: 'nat',
      default: 10_000,
    },
    cluster_address_suffix: {
      doc:
        "Per-cluster addresses: a TLS connection whose server name is <cluster>.<suffix> reaches that cluster's API server with no /k8s/clusters/<cluster> prefix " +
        '(kubeconfig tls-server-name; kubectl < 1.34 get --raw). The certificate must cover *.<suffix> (--dev does). Empty: off.',
      format: String,
      default: DEFAULT_CLUSTER_ADDRESS_SUFFIX,
    },
    redis: {
      url: {
        doc: 'redis:// or rediss:// URL of the fleet registry (password in the URL if any). Empty: the gateway runs alone. Set on every replica of a fleet.',
        format: String,
        default: '',
        sensitive: true,
      },
      ca_file: { doc: 'PEM CA for a rediss:// server whose certificate the system does not trust.', format: String, default: '' },
    },
    replica: {
      advertise_url: { doc: 'https://host:port at which the other replicas reach this one (required with redis.url).', format: String, default: '' },
      secret_file: {
        doc: 'File holding the secret every replica of the fleet shares; replica-to-replica links are authenticated with it (required with redis.url, at least 16 characters).',
        format: String,
        default: '',
      },
      ca_file: { doc: "PEM CA the other replicas' certificates are checked against (default: the system's).", format: String, default: '' },
    },
  },
  tunnel: tunnelSchema,
  runners: {
    max_streams: {
      doc: "Requests (streams) one runner may have open at once, over all its connections; beyond it: 429 with Retry-After. 0 = unlimited. A runner's tokens-file limits override it.",
      format: 'nat',
      default: 1000,
    },
    requests_per_second: {
      doc: 'Requests one runner may start per second, sustained; beyond it: 429 with Retry-After. 0 = unlimited.',
      format: 'nat',
      default: 0,
    },
    burst: { doc: 'Requests one runner may start at once above requests_per_second (0 = twice requests_per_second).', format: 'nat', default: 0 },
    bytes_per_second: {
      doc: "Bytes per second one runner may pull from its clusters, all its streams together (and push on /ws/runner), paced through the tunnel's flow control. 0 = unlimited. Sizes: 10MiB.",
      format: 'byte-size',
      default: 0,
    },
  },
  audit: {
    file: { doc: 'JSON-lines file for the audit records (one per runner request); empty: the log stream.', format: String, default: '' },
  },
} as unknown as Schema;

/** The validated gateway configuration (durations in ms). */
export interface GatewayConfig {
  gateway: {
    listen: string;
    tls: { cert: string; key: string };
    tokens_file: string;
    dev: boolean;
    allow_insecure: boolean;
    state_dir: string;
    drain_timeout: number;
    handshake_timeout: number;
    log_level: LogLevel;
    tls_handshake_timeout: number;
    request_head_timeout: number;
    max_connections: number;
    cluster_address_suffix: string;
    redis: { url: string; ca_file: string };
    replica: { advertise_url: string; secret_file: string; ca_file: string };
  };
  /** Sizes of the mux sessions with agents and with runners. */
  tunnel: TunnelConfig;
  /** Every runner's limits, unless its tokens-file entry sets its own. */
  runners: { max_streams: number; requests_per_second: number; burst: number; bytes_per_second: number };
  audit: { file: string };
}

/** Flags of `pipeops-tunnel gateway`, as parsed. */
export interface GatewayFlags {
  config?: string | undefined;
  listen?: string | undefined;
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  tokens?: string | undefined;
  dev?: boolean | undefined;
  'log-level'?: string | undefined;
  debug?: boolean | undefined;
  'redis-url'?: string | undefined;
  'advertise-url'?: string | undefined;
  'replica-secret-file'?: string | undefined;
  'cluster-address-suffix'?: string | undefined;
}

const hints: Record<string, string> = {
  'gateway.tokens_file': 'set gateway.tokens_file in the config file, PIPEOPS_GATEWAY_TOKENS_FILE or --tokens',
};

/**
 * Loads and validates the gateway configuration: flags > environment > file > defaults.
 * @throws CliError PT_ERR_CLI_CONFIG naming each bad key, or PT_ERR_CLI_CONFIG_FILE.
 */
export function loadGatewayConfig(flags: GatewayFlags, env: Record<string, string | undefined>): GatewayConfig {
  const level = flags['log-level'] ?? (flags.debug === true ? 'debug' : undefined);
  const conf = loadConfig({
    schema: gatewaySchema,
    file: flags.config,
    env,
    overrides: {
      'gateway.listen': flags.listen,
      'gateway.tls.cert': flags['tls-cert'],
      'gateway.tls.key': flags['tls-key'],
      'gateway.tokens_file': flags.tokens,
      'gateway.dev': flags.dev === true ? true : undefined,
      'gateway.log_level': level,
      'gateway.redis.url': flags['redis-url'],
      'gateway.replica.advertise_url': flags['advertise-url'],
      'gateway.replica.secret_file': flags['replica-secret-file'],
      'gateway.cluster_address_suffix': flags['cluster-address-suffix'],
    },
    hints,
  });
  const config = conf.getProperties() as unknown as GatewayConfig;
  verifyGatewayConfig(config);
  return config;
}

function verifyGatewayConfig(c: GatewayConfig): void {
  const g = c.gateway;
  const problems: string[] = [];
  if ((g.tls.cert === '') !== (g.tls.key === '')) {
    problems.push(`${g.tls.cert === '' ? 'gateway.tls.cert' : 'gateway.tls.key'}: gateway.tls.cert and gateway.tls.key go together`);
  }
  if (g.tls.cert === '' && g.tls.key === '' && !g.dev && !g.allow_insecure) {
    problems.push('gateway.tls.cert: is required (or gateway.dev: true for a generated certificate, or gateway.allow_insecure: true for plain HTTP)');
  }
  if (g.tls.cert !== '' && g.dev) problems.push('gateway.dev: cannot be combined with gateway.tls.cert');
  if (g.tls_handshake_timeout < 1) problems.push('gateway.tls_handshake_timeout: must be at least 1ms');
  if (g.request_head_timeout < 1) problems.push('gateway.request_head_timeout: must be at least 1ms');
  if (g.max_connections < 1) problems.push('gateway.max_connections: must be at least 1');
  const suffixProblem = clusterAddressSuffixProblem(g.cluster_address_suffix);
  if (suffixProblem !== undefined) problems.push(`gateway.cluster_address_suffix: ${suffixProblem}`);
  if (g.redis.url !== '') {
    if (!/^rediss?:\/\/[^/]/.test(g.redis.url)) problems.push('gateway.redis.url: must be a redis:// or rediss:// URL');
    if (g.replica.advertise_url === '')
      problems.push('gateway.replica.advertise_url: is required with gateway.redis.url (the https://host:port other replicas reach this one at)');
    if (g.replica.secret_file === '') problems.push('gateway.replica.secret_file: is required with gateway.redis.url (a secret file shared by every replica)');
  }
  problems.push(...tunnelConfigProblems(c.tunnel));
  problems.push(
    ...unreadableFiles([
      ['gateway.tls.cert', g.tls.cert],
      ['gateway.tls.key', g.tls.key],
      ['gateway.tokens_file', g.tokens_file],
      ['gateway.redis.ca_file', g.redis.ca_file],
      ['gateway.replica.secret_file', g.replica.secret_file],
      ['gateway.replica.ca_file', g.replica.ca_file],
    ]),
  );
  if (problems.length > 0) throw configError(problems);
}

/** `gateway.listen` split into host and port (validated by the schema). */
export function listenAddress(c: GatewayConfig): { host: string; port: number } {
  const hp = parseHostPort(c.gateway.listen);
  if (hp === undefined) throw configError([`gateway.listen: must be HOST:PORT`]);
  return hp;
}
