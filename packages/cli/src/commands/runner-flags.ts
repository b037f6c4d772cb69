import { readFileSync } from 'node:fs';
import { CliError } from '../errors.ts';
import { LOG_LEVELS, type LogLevel } from '../formats.ts';
import type { FlagSpecs } from '../usage.ts';

/** Flags `proxy` and `kubeconfig` share: where the gateway is and who the runner is. */
export const runnerFlags: FlagSpecs = {
  gateway: { type: 'string', value: 'URL', help: 'gateway URL, https://host:port (env PIPEOPS_GATEWAY_URL)' },
  token: { type: 'string', value: 'T', help: 'runner token; prefer the environment: PIPEOPS_RUNNER_TOKEN' },
  cluster: { type: 'string', value: 'C', help: 'cluster to reach (env PIPEOPS_CLUSTER)' },
  ca: { type: 'string', value: 'FILE', help: "PEM file of the CA that signed the gateway's certificate" },
  'insecure-skip-verify': { type: 'boolean', help: "do not verify the gateway's certificate (development only)" },
};

/** What the runner flags resolve to. */
export interface RunnerSettings {
  gateway: URL;
  token: string;
  cluster: string;
  ca: string | undefined;
  caFile: string | undefined;
  insecureSkipVerify: boolean;
}

export interface RunnerFlagValues {
  gateway?: string | undefined;
  token?: string | undefined;
  cluster?: string | undefined;
  ca?: string | undefined;
  'insecure-skip-verify'?: boolean | undefined;
}

/** Flags, then environment; throws `PT_ERR_CLI_CONFIG` naming the flag. The token is never echoed. */
export function resolveRunnerSettings(flags: RunnerFlagValues, env: Record<string, string | undefined>): RunnerSettings {
  const gatewayText = flags.gateway ?? env.PIPEOPS_GATEWAY_URL ?? '';
  const token = flags.token ?? env.PIPEOPS_RUNNER_TOKEN ?? '';
  const cluster = flags.cluster ?? env.PIPEOPS_CLUSTER ?? '';
  if (gatewayText === '') throw new CliError('PT_ERR_CLI_CONFIG', '--gateway is required (or PIPEOPS_GATEWAY_URL)');
  let gateway: URL;
  try {
    gateway = new URL(gatewayText);
  } catch {
    throw new CliError('PT_ERR_CLI_CONFIG', `--gateway must be an absolute URL such as https://gateway.example:8443, got ${gatewayText}`);
  }
  if (gateway.protocol !== 'https:' && gateway.protocol !== 'http:')
    throw new CliError('PT_ERR_CLI_CONFIG', `--gateway must use https:// (http:// for development), got ${gateway.protocol}`);
  if (token === '') throw new CliError('PT_ERR_CLI_CONFIG', '--token is required (or PIPEOPS_RUNNER_TOKEN)');
  if (cluster === '') throw new CliError('PT_ERR_CLI_CONFIG', '--cluster is required (or PIPEOPS_CLUSTER)');
  let ca: string | undefined;
  if (flags.ca !== undefined) {
    try {
      ca = readFileSync(flags.ca, 'utf8');
    } catch (cause) {
      throw new CliError('PT_ERR_CLI_CONFIG', `--ca: cannot read ${flags.ca}`, { cause });
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new CliError('PT_ERR_CLI_CONFIG', `--ca: ${flags.ca} holds no PEM certificate`);
  }
  return { gateway, token, cluster, ca, caFile: flags.ca, insecureSkipVerify: flags['insecure-skip-verify'] === true };
}

/** `--log-level` / `--debug` → a pino level; throws `PT_ERR_CLI_CONFIG` for an unknown level. */
export function logLevelFrom(level: string | undefined, debug: boolean | undefined): LogLevel {
  if (debug === true) return 'debug';
  const l = level ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(l)) throw new CliError('PT_ERR_CLI_CONFIG', `--log-level must be one of ${LOG_LEVELS.join('|')}, got ${l}`);
  return l as LogLevel;
}
