import { stringify } from 'yaml';
import { ExitCode } from '../errors.ts';
import type { CliIo } from '../io.ts';
import { formatFlags, type FlagSpecs } from '../usage.ts';
import { loadOrExit, parseCommandArgs } from './command-args.ts';
import { resolveRunnerSettings, runnerFlags, type RunnerFlagValues, type RunnerSettings } from './runner-flags.ts';

/** Flags of `pipeops-tunnel kubeconfig`. */
export const kubeconfigFlags: FlagSpecs = {
  ...runnerFlags,
  name: { type: 'string', value: 'N', help: 'name of the cluster, user and context entries (default pipeops-<cluster>)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** `pipeops-tunnel kubeconfig --help`. */
export function kubeconfigUsage(): string {
  return [
    'Usage: pipeops-tunnel kubeconfig --gateway URL --token T --cluster C [--ca FILE] [--name N]',
    '',
    "Prints a kubeconfig whose server is the gateway's endpoint for the cluster",
    '(URL/k8s/clusters/C), with the runner token and the CA embedded',
    '(certificate-authority-data). kubectl and helm use it unmodified:',
    '  pipeops-tunnel kubeconfig … > kubeconfig.yaml && kubectl --kubeconfig kubeconfig.yaml get pods',
    '',
    'Flags:',
    formatFlags(kubeconfigFlags),
    '',
    'The output contains the token: keep the file private.',
    '',
  ].join('\n');
}

/** The kubeconfig document for the gateway endpoint of `s.cluster`. */
export function buildKubeconfig(s: RunnerSettings, name: string): Record<string, unknown> {
  const base = s.gateway.href.replace(/\/+$/, '');
  const cluster: Record<string, unknown> = { server: `${base}/k8s/clusters/${encodeURIComponent(s.cluster)}` };
  if (s.ca !== undefined) cluster['certificate-authority-data'] = Buffer.from(s.ca).toString('base64');
  if (s.insecureSkipVerify) cluster['insecure-skip-tls-verify'] = true;
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster }],
    users: [{ name, user: { token: s.token } }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    'current-context': name,
  };
}

/** Runs `pipeops-tunnel kubeconfig`; resolves with the exit code. */
export async function runKubeconfig(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandArgs<RunnerFlagValues & { name?: string | undefined }>('kubeconfig', args, kubeconfigFlags, kubeconfigUsage, io);
  if ('exit' in parsed) return parsed.exit;
  const { flags } = parsed;
  const loaded = loadOrExit('kubeconfig', io, (): RunnerSettings => resolveRunnerSettings(flags, io.env));
  if ('exit' in loaded) return loaded.exit;
  const settings = loaded.value;
  io.stdout.write(stringify(buildKubeconfig(settings, flags.name ?? `pipeops-${settings.cluster}`)));
  return ExitCode.ok;
}
