import type { ConnectFlags } from '../agent-config.ts';
import { CliError, ExitCode } from '../errors.ts';
import type { CliIo } from '../io.ts';
import { allPassed, formatChecks, outputFormat, print, type CheckResult, type OutputFormat } from '../doctor/report.ts';
import { formatFlags, type FlagSpecs } from '../usage.ts';
import { connectFlags } from './connect.ts';
import { loadOrExit, parseCommandArgs } from './command-args.ts';
import { resolveRunnerSettings, runnerFlags, type RunnerFlagValues, type RunnerSettings } from './runner-flags.ts';

/** Flags of `pipeops-tunnel doctor`: `connect`'s configuration flags (agent mode), the runner flags (runner mode), `-o`. */
export const doctorFlags: FlagSpecs = {
  config: connectFlags.config!,
  'pipeops-url': connectFlags['pipeops-url']!,
  token: { type: 'string', value: 'T', help: 'agent token (prefer PIPEOPS_PIPEOPS_TOKEN); with --gateway, the runner token (prefer PIPEOPS_RUNNER_TOKEN)' },
  'cluster-name': connectFlags['cluster-name']!,
  kubeconfig: connectFlags.kubeconfig!,
  'in-cluster': connectFlags['in-cluster']!,
  'access-as': connectFlags['access-as']!,
  gateway: { ...runnerFlags.gateway!, help: 'runner mode: check the way to this gateway, https://host:port (env PIPEOPS_GATEWAY_URL with --cluster)' },
  cluster: { ...runnerFlags.cluster!, help: 'runner mode: the cluster to reach through the gateway (env PIPEOPS_CLUSTER with --gateway)' },
  ca: runnerFlags.ca!,
  'insecure-skip-verify': runnerFlags['insecure-skip-verify']!,
  output: { type: 'string', short: 'o', value: 'FORMAT', help: 'text|json (default: text on a terminal, JSON otherwise)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** `pipeops-tunnel doctor --help`. */
export function doctorUsage(): string {
  return [
    "Usage: pipeops-tunnel doctor [connect's config flags] [-o text|json]",
    '       pipeops-tunnel doctor --gateway URL --cluster C [--token T] [--ca FILE] [-o text|json]',
    '',
    'Checks, one by one, what the agent (or a runner) needs, and says how to fix',
    'what fails. Secrets are never printed.',
    '',
    'Agent mode (the configuration `connect` would use: --config, PIPEOPS_*, flags):',
    '  configuration, kube credentials, API server (/version, /readyz), RBAC',
    '  (SelfSubjectRulesReview; with access_as: runner the impersonation rights),',
    '  proxy (HTTPS_PROXY/NO_PROXY), DNS, TCP, TLS (chain, name, expiry), clock',
    "  (the gateway's Date), and the token (the tunnel upgrade's answer; closed",
    '  before the tunnel starts, so a running agent is not disturbed).',
    'Runner mode (--gateway and --cluster, runner token): proxy, DNS, TCP, TLS,',
    '  clock, the token (/v1/clusters), the cluster connected, and its /version',
    '  through the gateway.',
    '',
    'Flags:',
    formatFlags(doctorFlags),
    '',
    'Exit codes: 0 every check passed (warnings allowed), 1 a check failed,',
    '            2 invalid usage.',
    '',
  ].join('\n');
}

type DoctorFlagValues = ConnectFlags & RunnerFlagValues & { output?: string | undefined };

const AGENT_ONLY = ['config', 'pipeops-url', 'cluster-name', 'kubeconfig', 'in-cluster', 'access-as'] as const;
const RUNNER_ONLY = ['ca', 'insecure-skip-verify'] as const;

/** Agent mode, or runner mode (`--gateway`/`--cluster`); flags of the other mode are a usage error. */
function modeOf(flags: DoctorFlagValues): 'agent' | 'runner' {
  const runner = flags.gateway !== undefined || flags.cluster !== undefined;
  const stray = runner ? AGENT_ONLY.filter((f) => flags[f] !== undefined) : RUNNER_ONLY.filter((f) => flags[f] !== undefined);
  if (stray.length > 0) {
    throw new CliError(
      'PT_ERR_CLI_USAGE',
      runner
        ? `--${stray.join(', --')} ${stray.length === 1 ? 'is' : 'are'} for agent mode; with --gateway/--cluster the doctor checks a runner's way to the cluster`
        : `--${stray.join(', --')} ${stray.length === 1 ? 'is' : 'are'} for runner mode (--gateway URL --cluster C); the agent's CA is pipeops.tls.ca_file`,
    );
  }
  return runner ? 'runner' : 'agent';
}

/** Runs `pipeops-tunnel doctor`; resolves with the exit code. */
export async function runDoctor(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandArgs<DoctorFlagValues>('doctor', args, doctorFlags, doctorUsage, io);
  if ('exit' in parsed) return parsed.exit;
  const { flags } = parsed;
  const loaded = loadOrExit('doctor', io, () => {
    const format = outputFormat(flags.output, io);
    const mode = modeOf(flags);
    return { format, mode, settings: mode === 'runner' ? resolveRunnerSettings(flags, io.env) : undefined };
  });
  if ('exit' in loaded) return loaded.exit;
  const { format, mode, settings } = loaded.value;
  // Loaded only now: --help and usage errors stay fast.
  const run =
    mode === 'runner'
      ? await (await import('../doctor/runner-doctor.ts')).runRunnerDoctor(settings as RunnerSettings, io.env)
      : await (await import('../doctor/agent-doctor.ts')).runAgentDoctor(flags, io.env);
  print(io, render(format, mode, run.subject, run.checks), run.secrets);
  return allPassed(run.checks) ? ExitCode.ok : ExitCode.failure;
}

function render(format: OutputFormat, mode: 'agent' | 'runner', subject: string, checks: CheckResult[]): string {
  const ok = allPassed(checks);
  if (format === 'json') return `${JSON.stringify({ mode, subject, ok, checks }, null, 2)}\n`;
  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  const summary = ok
    ? `every check passed${warned > 0 ? ` (${String(warned)} warning${warned === 1 ? '' : 's'})` : ''}`
    : `${String(failed)} check${failed === 1 ? '' : 's'} failed${warned > 0 ? `, ${String(warned)} warning${warned === 1 ? '' : 's'}` : ''}`;
  return `pipeops-tunnel doctor — ${subject}\n\n${formatChecks(checks)}\n${summary}\n`;
}
