import type { Agent } from '@pipeops/tunnel-agent';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { effectiveLogLevel, loadAgentConfig, printableAgentConfig, toAgentOptions, type ConnectFlags } from '../agent-config.ts';
import { ExitCode, exitCodeFor } from '../errors.ts';
import { trimWhenIdle, type IdleTrim } from '../idle-trim.ts';
import type { CliIo } from '../io.ts';
import { createLogger } from '../logger.ts';
import { onStopSignal } from '../signals.ts';
import { formatFlags, type FlagSpecs } from '../usage.ts';
import { VERSION } from '../version.ts';
import { loadOrExit, parseCommandArgs } from './command-args.ts';

/** Flags of `pipeops-tunnel connect`. */
export const connectFlags: FlagSpecs = {
  config: { type: 'string', short: 'c', value: 'FILE', help: 'YAML config file (see config.example.yaml)' },
  'pipeops-url': { type: 'string', value: 'URL', help: 'gateway URL, https://… (pipeops.api_url)' },
  token: { type: 'string', value: 'T', help: 'agent token (pipeops.token); prefer PIPEOPS_PIPEOPS_TOKEN' },
  'cluster-name': { type: 'string', value: 'N', help: 'cluster name (agent.cluster_name)' },
  port: { type: 'string', value: 'P', help: 'health/metrics listener port, 0 = ephemeral (agent.port, default 8080)' },
  kubeconfig: { type: 'string', value: 'FILE', help: 'kubeconfig file (kubernetes.kubeconfig)' },
  'in-cluster': { type: 'boolean', help: "use the pod's service account (kubernetes.in_cluster)" },
  'access-as': {
    type: 'string',
    value: 'WHO',
    help: 'agent|runner: whose identity runner requests carry to the API server (kubernetes.access_as, default agent)',
  },
  'log-level': { type: 'string', value: 'LEVEL', help: 'fatal|error|warn|info|debug|trace|silent (agent.log_level, default info)' },
  debug: { type: 'boolean', help: 'debug logging (agent.debug)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** `pipeops-tunnel connect --help`. */
export function connectUsage(): string {
  return [
    'Usage: pipeops-tunnel connect [flags]',
    '',
    'Runs the agent: dials the gateway over one outbound WebSocket and serves',
    "the cluster's API server through it. Serves /health, /ready and /metrics.",
    '',
    'Flags:',
    formatFlags(connectFlags),
    '',
    'Every config key can also be set as PIPEOPS_<SECTION>_<KEY>, e.g.',
    'PIPEOPS_PIPEOPS_API_URL, PIPEOPS_PIPEOPS_TOKEN, PIPEOPS_AGENT_CLUSTER_NAME.',
    'Precedence: flags > environment > config file > defaults.',
    'HTTPS_PROXY / NO_PROXY are honoured for the connection to the gateway.',
    '',
    'Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 2 invalid configuration,',
    '            3 credentials rejected, 4 reconnect attempts exhausted.',
    '',
  ].join('\n');
}

/** Runs `pipeops-tunnel connect`; resolves with the exit code. */
export async function runConnect(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandArgs<ConnectFlags>('connect', args, connectFlags, connectUsage, io);
  if ('exit' in parsed) return parsed.exit;
  const loaded = loadOrExit('connect', io, () => loadAgentConfig(parsed.flags, io.env));
  if ('exit' in loaded) return loaded.exit;
  const config = loaded.value;

  const logger = createLogger({ level: effectiveLogLevel(config.agent.log_level, config.agent.debug) });
  const registry = new Registry();
  // Loaded here, not at the top: --help and configuration errors stay independent of the packages.
  const { EVENT_LOOP_SAMPLE_MS } = await import('@pipeops/tunnel-protocol');
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const options = toAgentOptions(config, io.env, VERSION);
  logger.debug({ config: printableAgentConfig(config) }, 'configuration loaded');
  logger.info({ version: VERSION, agentId: options.agentId, clusterName: options.clusterName, apiUrl: options.apiUrl }, 'starting agent');

  let agent: Agent;
  try {
    // Loaded only now: --help and configuration errors stay fast and independent of the agent.
    const { createAgent } = await import('@pipeops/tunnel-agent');
    agent = createAgent(options, { logger, registry });
  } catch (err) {
    const code = exitCodeFor(err);
    logger.error({ err }, 'cannot create the agent');
    return code;
  }
  // Observed at once: a rejection while start() is pending must not go unhandled.
  const outcome = agent.done.then(
    () => undefined,
    (err: unknown) => err,
  );
  const removeSignals = onStopSignal(logger, () => {
    agent.close(config.agent.shutdown_timeout).catch((err: unknown) => logger.error({ err }, 'error while closing the agent'));
  });
  let trim: IdleTrim | undefined;
  try {
    await agent.start();
    const addr = agent.healthAddress;
    if (addr !== undefined) {
      logger.info({ address: addr.address, port: addr.port }, `health listener on ${addr.address}:${addr.port}`);
    }
    if (config.agent.idle_trim_after > 0) {
      const a = agent;
      trim = trimWhenIdle({ quietMs: config.agent.idle_trim_after, activity: () => a.streamsAccepted, busy: () => a.activeStreams > 0, logger });
    }
    const err = await outcome;
    if (err === undefined) {
      logger.info('agent stopped');
      return ExitCode.ok;
    }
    const code = exitCodeFor(err);
    logger.error({ err, exitCode: code }, 'agent stopped with an error');
    await agent.close(0).catch(() => {});
    return code;
  } catch (err) {
    logger.error({ err }, 'agent failed to start');
    await agent.close(0).catch(() => {});
    return exitCodeFor(err);
  } finally {
    trim?.stop();
    removeSignals();
  }
}
