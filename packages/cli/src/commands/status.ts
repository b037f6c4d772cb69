import { CliError, ExitCode } from '../errors.ts';
import type { CliIo } from '../io.ts';
import { formatChecks, outputFormat, print, type CheckResult, type OutputFormat } from '../doctor/report.ts';
import { formatFlags, type FlagSpecs } from '../usage.ts';
import { loadOrExit, parseCommandArgs } from './command-args.ts';
import { resolveRunnerSettings, runnerFlags, type RunnerFlagValues, type RunnerSettings } from './runner-flags.ts';

/** Flags of `pipeops-tunnel status`. */
export const statusFlags: FlagSpecs = {
  agent: { type: 'string', value: 'URL', help: "the local agent's health port, e.g. http://127.0.0.1:8080 (default port: PIPEOPS_AGENT_PORT, else 8080)" },
  gateway: { ...runnerFlags.gateway!, help: "a cluster as the gateway sees it: the gateway's URL (env PIPEOPS_GATEWAY_URL with --cluster)" },
  token: { type: 'string', value: 'T', help: 'with --gateway: a runner or admin token; prefer the environment: PIPEOPS_RUNNER_TOKEN' },
  cluster: { ...runnerFlags.cluster!, help: 'with --gateway: the cluster (env PIPEOPS_CLUSTER)' },
  ca: runnerFlags.ca!,
  'insecure-skip-verify': runnerFlags['insecure-skip-verify']!,
  output: { type: 'string', short: 'o', value: 'FORMAT', help: 'text|json (default: text on a terminal, JSON otherwise)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** `pipeops-tunnel status --help`. */
export function statusUsage(): string {
  return [
    'Usage: pipeops-tunnel status [--agent URL] [-o text|json]',
    '       pipeops-tunnel status --gateway URL --cluster C [--token T] [--ca FILE] [-o text|json]',
    '',
    'The local agent (its /health, /ready and /metrics): healthy, ready or why not,',
    'the tunnel connected or not, connects, reconnects and failures by reason, and',
    'whether its API server answers.',
    'With --gateway: the cluster as the gateway sees it (GET /v1/clusters with an',
    'admin or runner token, and its /version through the gateway): connected, its',
    "agent's id, name and version, its last status report, the replica holding it.",
    '',
    'Flags:',
    formatFlags(statusFlags),
    '',
    'Exit codes: 0 ready / connected, 1 not (or not reachable), 2 invalid usage.',
    '',
  ].join('\n');
}

type StatusFlagValues = RunnerFlagValues & { agent?: string | undefined; output?: string | undefined };

type Target = { mode: 'agent'; url: URL } | { mode: 'gateway'; settings: RunnerSettings };

function targetOf(flags: StatusFlagValues, env: Record<string, string | undefined>): Target {
  const gateway = flags.gateway !== undefined || flags.cluster !== undefined;
  if (gateway && flags.agent !== undefined)
    throw new CliError('PT_ERR_CLI_USAGE', '--agent and --gateway/--cluster exclude each other: status reads either the local agent or the gateway');
  if (gateway) return { mode: 'gateway', settings: resolveRunnerSettings(flags, env) };
  const runnerOnly = (['token', 'ca', 'insecure-skip-verify'] as const).filter((f) => flags[f] !== undefined);
  if (runnerOnly.length > 0)
    throw new CliError('PT_ERR_CLI_USAGE', `--${runnerOnly.join(', --')} only ${runnerOnly.length === 1 ? 'applies' : 'apply'} with --gateway URL --cluster C`);
  const text = flags.agent ?? `http://127.0.0.1:${env.PIPEOPS_AGENT_PORT ?? '8080'}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError('PT_ERR_CLI_CONFIG', `--agent must be a URL such as http://127.0.0.1:8080, got ${text}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError('PT_ERR_CLI_CONFIG', `--agent must be an http:// URL, got ${text}`);
  return { mode: 'agent', url };
}

/** Runs `pipeops-tunnel status`; resolves with the exit code. */
export async function runStatus(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandArgs<StatusFlagValues>('status', args, statusFlags, statusUsage, io);
  if ('exit' in parsed) return parsed.exit;
  const { flags } = parsed;
  const loaded = loadOrExit('status', io, () => ({ format: outputFormat(flags.output, io), target: targetOf(flags, io.env) }));
  if ('exit' in loaded) return loaded.exit;
  const { format, target } = loaded.value;
  // Loaded only now: --help and usage errors stay fast.
  if (target.mode === 'agent') {
    const { agentStatus, agentRows } = await import('../doctor/agent-status.ts');
    const s = await agentStatus(target.url);
    print(
      io,
      render(format, s, `agent at ${s.agent}${s.uptimeSeconds !== null ? `, up ${uptime(s.uptimeSeconds)}` : ''}`, agentRows(s), s.ok ? 'ready' : 'not ready'),
      [],
    );
    return s.ok ? ExitCode.ok : ExitCode.failure;
  }
  const { gatewayStatus, gatewayRows } = await import('../doctor/gateway-status.ts');
  const s = await gatewayStatus(target.settings, io.env);
  print(io, render(format, s, `cluster ${s.cluster} at ${s.gateway}`, gatewayRows(s), s.ok ? 'connected' : 'not connected'), [target.settings.token]);
  return s.ok ? ExitCode.ok : ExitCode.failure;
}

function render(format: OutputFormat, status: object, subject: string, rows: CheckResult[], verdict: string): string {
  if (format === 'json') return `${JSON.stringify(status, null, 2)}\n`;
  return `pipeops-tunnel status — ${subject}\n\n${formatChecks(rows)}\n${verdict}\n`;
}

function uptime(seconds: number): string {
  if (seconds < 120) return `${String(Math.round(seconds))} s`;
  if (seconds < 7_200) return `${String(Math.round(seconds / 60))} min`;
  if (seconds < 172_800) return `${String(Math.round(seconds / 3_600))} h`;
  return `${String(Math.round(seconds / 86_400))} days`;
}
