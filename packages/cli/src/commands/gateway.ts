import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gateway } from '@pipeops/tunnel-gateway';
import { EVENT_LOOP_SAMPLE_MS } from '@pipeops/tunnel-protocol';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import { ExitCode, exitCodeFor } from '../errors.ts';
import { listenAddress, loadGatewayConfig, type GatewayConfig, type GatewayFlags } from '../gateway-config.ts';
import type { CliIo } from '../io.ts';
import { createLogger } from '../logger.ts';
import { onStopSignal } from '../signals.ts';
import { VERSION } from '../version.ts';
import { formatFlags, type FlagSpecs } from '../usage.ts';
import { loadOrExit, parseCommandArgs } from './command-args.ts';
import { toMuxOptions } from '../tunnel-config.ts';

/** Flags of `pipeops-tunnel gateway`. */
export const gatewayFlags: FlagSpecs = {
  config: { type: 'string', short: 'c', value: 'FILE', help: 'YAML config file (see gateway.example.yaml)' },
  listen: { type: 'string', value: 'HOST:PORT', help: 'listen address, port 0 = ephemeral (gateway.listen, default 0.0.0.0:8443)' },
  'tls-cert': { type: 'string', value: 'FILE', help: 'PEM certificate chain (gateway.tls.cert)' },
  'tls-key': { type: 'string', value: 'FILE', help: 'PEM private key (gateway.tls.key)' },
  tokens: { type: 'string', value: 'FILE', help: 'tokens file (gateway.tokens_file, see tokens.example.yaml)' },
  dev: { type: 'boolean', help: 'generate a self-signed CA and certificate; the CA file path is logged (gateway.dev)' },
  'log-level': { type: 'string', value: 'LEVEL', help: 'fatal|error|warn|info|debug|trace|silent (gateway.log_level)' },
  debug: { type: 'boolean', help: 'debug logging (same as --log-level debug)' },
  'redis-url': { type: 'string', value: 'URL', help: 'redis:// or rediss:// registry shared by the replicas of a fleet (gateway.redis.url)' },
  'advertise-url': { type: 'string', value: 'URL', help: 'https://host:port other replicas reach this one at (gateway.replica.advertise_url)' },
  'replica-secret-file': { type: 'string', value: 'FILE', help: 'secret shared by every replica (gateway.replica.secret_file)' },
  'cluster-address-suffix': {
    type: 'string',
    value: 'S',
    help: "per-cluster addresses <cluster>.S (TLS server name), no path prefix; '' = off (gateway.cluster_address_suffix, default clusters.localhost)",
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** `pipeops-tunnel gateway --help`. */
export function gatewayUsage(): string {
  return [
    'Usage: pipeops-tunnel gateway [flags]',
    '',
    'Runs the relay: accepts agents on /v1/tunnel and routes runners to their',
    'clusters (/k8s/clusters/{cluster}/…, /ws/runner, /ws/k8s, /v1/clusters), and',
    'each cluster at its own address: a TLS server name <cluster>.<suffix>',
    '(--cluster-address-suffix) with no path prefix; the certificate needs *.<suffix>.',
    '',
    'Flags:',
    formatFlags(gatewayFlags),
    '',
    'Every config key can also be set as PIPEOPS_GATEWAY_<KEY>, e.g.',
    'PIPEOPS_GATEWAY_LISTEN, PIPEOPS_GATEWAY_TOKENS_FILE, PIPEOPS_GATEWAY_TLS_CERT.',
    'Precedence: flags > environment > config file > defaults.',
    '',
    'Several replicas behind one load balancer share a registry in Redis:',
    'set --redis-url, --advertise-url and --replica-secret-file on each.',
    '',
    'Signals: SIGTERM/SIGINT drain and exit 0 (gateway.drain_timeout);',
    '         SIGHUP reloads the tokens file.',
    '',
  ].join('\n');
}

type GenerateDevCertificates = typeof import('@pipeops/tunnel-gateway').generateDevCertificates;
type FleetOptions = import('@pipeops/tunnel-gateway').FleetOptions;

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Certificate and key: from files, generated (`--dev`, CA written to a file), or none (plain HTTP). */
function loadTls(
  config: GatewayConfig,
  host: string,
  logger: Logger,
  generateDevCertificates: GenerateDevCertificates,
): { cert: string | Buffer; key: string | Buffer } | undefined {
  const g = config.gateway;
  if (g.tls.cert !== '') return { cert: readFileSync(g.tls.cert), key: readFileSync(g.tls.key) };
  if (!g.dev) return undefined;
  const hosts = [...new Set(['localhost', '127.0.0.1', '::1', ...(host === '0.0.0.0' || host === '::' ? [] : [host])])];
  // The per-cluster addresses too (*.<suffix>); in the list, so a state folder made for another suffix is not reused.
  const suffix = g.cluster_address_suffix;
  const covered = suffix === '' ? hosts : [...hosts, `*.${suffix}`];
  let dir = g.state_dir;
  if (dir === '') dir = mkdtempSync(join(tmpdir(), 'pipeops-tunnel-gateway-'));
  else mkdirSync(dir, { recursive: true });
  const caFile = join(dir, 'dev-ca.pem');
  const certFile = join(dir, 'dev-cert.pem');
  const keyFile = join(dir, 'dev-key.pem');
  const hostsFile = join(dir, 'dev-hosts.json');
  // A state folder that already holds a dev certificate for the same hosts is
  // reused, so agents that trust its CA reconnect after a gateway restart.
  if ([caFile, certFile, keyFile, hostsFile].every((f) => existsSync(f)) && readFileSync(hostsFile, 'utf8') === JSON.stringify(covered)) {
    logger.warn({ caFile, hosts: covered, reused: true }, `dev CA written to ${caFile}`);
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  }
  const dev = generateDevCertificates({ hosts, clusterAddressSuffix: suffix });
  writeFileSync(caFile, dev.caCert, { mode: 0o644 });
  writeFileSync(certFile, dev.cert, { mode: 0o644 });
  writeFileSync(keyFile, dev.key, { mode: 0o600 });
  writeFileSync(hostsFile, JSON.stringify(covered), { mode: 0o644 });
  logger.warn({ caFile, hosts: covered }, `dev CA written to ${caFile}`);
  return { cert: dev.cert, key: dev.key };
}

/** The fleet settings (`gateway.redis.*`, `gateway.replica.*`), when `gateway.redis.url` is set. */
function fleetOptions(config: GatewayConfig): { fleet?: FleetOptions } {
  const { redis, replica } = config.gateway;
  if (redis.url === '') return {};
  return {
    fleet: {
      redisUrl: redis.url,
      advertiseUrl: replica.advertise_url,
      secret: readFileSync(replica.secret_file, 'utf8').trim(),
      ...(redis.ca_file !== '' ? { redisCa: readFileSync(redis.ca_file) } : {}),
      ...(replica.ca_file !== '' ? { peerCa: readFileSync(replica.ca_file) } : {}),
    },
  };
}

/** Runs `pipeops-tunnel gateway`; resolves with the exit code. */
export async function runGateway(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandArgs<GatewayFlags>('gateway', args, gatewayFlags, gatewayUsage, io);
  if ('exit' in parsed) return parsed.exit;
  const loaded = loadOrExit('gateway', io, (): GatewayConfig => loadGatewayConfig(parsed.flags, io.env));
  if ('exit' in loaded) return loaded.exit;
  const config = loaded.value;

  const logger = createLogger({ level: config.gateway.log_level });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const { host, port } = listenAddress(config);
  const removeGuard = guardProcess(logger, registry);

  let gateway: Gateway | undefined;
  try {
    // Loaded only now: --help and configuration errors stay fast and independent of the gateway.
    const { createGateway, generateDevCertificates } = await import('@pipeops/tunnel-gateway');
    const tls = loadTls(config, host, logger, generateDevCertificates);
    if (tls === undefined) logger.warn('no TLS certificate: serving plain HTTP (gateway.allow_insecure, development only)');
    gateway = createGateway(
      {
        host,
        port,
        ...(tls !== undefined ? { tls } : {}),
        tokensFile: config.gateway.tokens_file,
        drainTimeoutMs: config.gateway.drain_timeout,
        handshakeTimeoutMs: config.gateway.handshake_timeout,
        gatewayVersion: VERSION,
        mux: toMuxOptions(config.tunnel),
        runnerLimits: {
          maxStreams: config.runners.max_streams,
          requestsPerSecond: config.runners.requests_per_second,
          burst: config.runners.burst,
          bytesPerSecond: config.runners.bytes_per_second,
        },
        ...(config.audit.file !== '' ? { auditFile: config.audit.file } : {}),
        tlsHandshakeTimeoutMs: config.gateway.tls_handshake_timeout,
        requestHeadTimeoutMs: config.gateway.request_head_timeout,
        maxConnections: config.gateway.max_connections,
        clusterAddressSuffix: config.gateway.cluster_address_suffix,
        ...fleetOptions(config),
      },
      { logger, registry },
    );
    const addr = await gateway.start();
    const url = `${tls !== undefined ? 'https' : 'http'}://${hostForUrl(addr.address)}:${addr.port}`;
    logger.info({ url, address: addr.address, port: addr.port }, `gateway listening on ${url}`);
  } catch (err) {
    logger.error({ err }, 'gateway failed to start');
    await gateway?.close(0).catch(() => {});
    removeGuard();
    return exitCodeFor(err);
  }

  const gw = gateway;
  const onHup = (): void => {
    logger.info({ signal: 'SIGHUP' }, 'reloading tokens');
    gw.reloadTokens().then(
      () => logger.info({ signal: 'SIGHUP', tokensFile: config.gateway.tokens_file }, 'SIGHUP: tokens reloaded'),
      (err: unknown) => logger.error({ err }, 'tokens reload failed; keeping the previous tokens'),
    );
  };
  process.on('SIGHUP', onHup);
  let removeSignals = (): void => {};
  const code = await new Promise<number>((resolve) => {
    removeSignals = onStopSignal(logger, () => {
      gw.close(config.gateway.drain_timeout).then(
        () => resolve(ExitCode.ok),
        (err: unknown) => {
          logger.error({ err }, 'error while draining');
          resolve(ExitCode.failure);
        },
      );
    });
  });
  removeSignals();
  process.off('SIGHUP', onHup);
  removeGuard();
  logger.info({ exitCode: code }, 'gateway stopped');
  return code;
}

/**
 * The last line of defence of a process that serves many agents and runners:
 * an exception no handler caught, or a rejection nobody awaited, comes from
 * one connection or request (every input path is guarded; this is for the
 * one that was missed). It is logged (`event: 'uncaught_exception'`, error
 * level) and counted in `pipeops_tunnel_uncaught_errors_total{kind}`, and the
 * gateway keeps serving everyone else instead of exiting. Returns a function
 * that removes the handlers.
 */
function guardProcess(logger: Logger, registry: Registry): () => void {
  const uncaught = new Counter({
    name: 'pipeops_tunnel_uncaught_errors_total',
    help: 'Exceptions and promise rejections no handler caught; the gateway logged them and kept serving.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  // At 0 from the start, so that the first uncaught error is an increase an alert sees.
  for (const kind of ['exception', 'rejection']) uncaught.inc({ kind }, 0);
  const onException = (err: Error): void => {
    uncaught.inc({ kind: 'exception' });
    logger.error({ event: 'uncaught_exception', kind: 'exception', err }, 'uncaught exception; the gateway keeps serving');
  };
  const onRejection = (reason: unknown): void => {
    uncaught.inc({ kind: 'rejection' });
    logger.error({ event: 'uncaught_exception', kind: 'rejection', err: reason }, 'unhandled promise rejection; the gateway keeps serving');
  };
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
