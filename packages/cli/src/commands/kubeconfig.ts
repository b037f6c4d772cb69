import { stringify } from 'yaml';
import { clusterAddressSuffixProblem, clusterServerName, DEFAULT_CLUSTER_ADDRESS_SUFFIX } from '@pipeops/tunnel-protocol';
import { CliError, ExitCode } from '../errors.ts';
import type { CliIo } from '../io.ts';
import { formatFlags, type FlagSpecs } from '../usage.ts';
import { loadOrExit, parseCommandArgs } from './command-args.ts';
import { resolveRunnerSettings, runnerFlags, type RunnerFlagValues, type RunnerSettings } from './runner-flags.ts';

/** Flags of `pipeops-tunnel kubeconfig`. */
export const kubeconfigFlags: FlagSpecs = {
  ...runnerFlags,
  name: { type: 'string', value: 'N', help: 'name of the cluster, user and context entries (default pipeops-<cluster>)' },
  address: {
    type: 'string',
    value: 'sni|path',
    help: 'sni: server URL + tls-server-name <cluster>.<suffix>; path: server URL/k8s/clusters/<cluster> (default sni, path where sni cannot be used)',
  },
  'cluster-address-suffix': {
    type: 'string',
    value: 'S',
    help: `the gateway's gateway.cluster_address_suffix (env PIPEOPS_CLUSTER_ADDRESS_SUFFIX, default ${DEFAULT_CLUSTER_ADDRESS_SUFFIX})`,
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** `pipeops-tunnel kubeconfig --help`. */
export function kubeconfigUsage(): string {
  return [
    'Usage: pipeops-tunnel kubeconfig --gateway URL --token T --cluster C [--ca FILE] [--name N] [--address sni|path]',
    '',
    "Prints a kubeconfig for the cluster's address on the gateway, with the runner",
    'token and the CA embedded (certificate-authority-data). kubectl and helm use',
    'it unmodified:',
    '  pipeops-tunnel kubeconfig … > kubeconfig.yaml && kubectl --kubeconfig kubeconfig.yaml get pods',
    '',
    "The address, by default the cluster's own (--address sni): server URL, and",
    'tls-server-name C.<suffix>, which selects the cluster in the TLS handshake',
    "(the name need not resolve; the gateway's certificate must cover *.<suffix>).",
    'No path prefix, so every kubectl works with every command, `get --raw`',
    'included (kubectl < 1.34 drops a server path there). --address path writes',
    'server URL/k8s/clusters/C instead; it is used on its own when the address',
    'cannot be (an http:// gateway, a cluster name that is not a DNS label).',
    '',
    'Flags:',
    formatFlags(kubeconfigFlags),
    '',
    'The output contains the token: keep the file private.',
    '',
  ].join('\n');
}

/**
 * How the kubeconfig addresses the cluster: `sni` (server `URL`, with
 * `tls-server-name` the cluster's own address `<cluster>.<suffix>`) or `path`
 * (server `URL/k8s/clusters/<cluster>`).
 */
export type KubeconfigAddress = { form: 'sni'; serverName: string } | { form: 'path' };

/** Values of the kubeconfig-only flags. */
export interface KubeconfigFlagValues {
  name?: string | undefined;
  address?: string | undefined;
  'cluster-address-suffix'?: string | undefined;
}

/**
 * The address to write, and a note for stderr when `sni` was not asked for
 * and cannot be used. Throws `PT_ERR_CLI_CONFIG` for an unknown `--address`,
 * a bad suffix, or `--address sni` where it cannot be used.
 */
export function kubeconfigAddress(
  s: RunnerSettings,
  flags: KubeconfigFlagValues,
  env: Record<string, string | undefined>,
): { address: KubeconfigAddress; note?: string } {
  const asked = flags.address;
  if (asked !== undefined && asked !== 'sni' && asked !== 'path') throw new CliError('PT_ERR_CLI_CONFIG', `--address must be sni or path, got ${asked}`);
  if (asked === 'path') return { address: { form: 'path' } };
  const suffix = flags['cluster-address-suffix'] ?? env.PIPEOPS_CLUSTER_ADDRESS_SUFFIX ?? DEFAULT_CLUSTER_ADDRESS_SUFFIX;
  const problem = clusterAddressSuffixProblem(suffix);
  if (problem !== undefined) throw new CliError('PT_ERR_CLI_CONFIG', `--cluster-address-suffix ${problem}`);
  const serverName = clusterServerName(s.cluster, suffix);
  const why =
    s.gateway.protocol !== 'https:'
      ? 'the gateway URL is http://, and a TLS server name needs https://'
      : s.gateway.pathname !== '/'
        ? `the gateway URL has a path (${s.gateway.pathname}), which kubectl < 1.34 would drop for get --raw as well`
        : suffix === ''
          ? 'the cluster address suffix is empty (the gateway has per-cluster addresses off)'
          : serverName === undefined
            ? `the cluster name ${JSON.stringify(s.cluster)} is not a DNS label (a-z, 0-9 and inner -, at most 63), so it has no address <cluster>.${suffix}`
            : undefined;
  if (why === undefined && serverName !== undefined) return { address: { form: 'sni', serverName } };
  if (asked === 'sni') throw new CliError('PT_ERR_CLI_CONFIG', `--address sni cannot be used: ${why ?? ''}`);
  return {
    address: { form: 'path' },
    note: `the kubeconfig uses the path form (server …/k8s/clusters/<cluster>): ${why ?? ''}; with kubectl < 1.34, \`get --raw\` then needs the /k8s/clusters/<cluster> prefix in its path`,
  };
}

/** The kubeconfig document for `s.cluster` at `address` (default: the path form). */
export function buildKubeconfig(s: RunnerSettings, name: string, address: KubeconfigAddress = { form: 'path' }): Record<string, unknown> {
  const base = s.gateway.href.replace(/\/+$/, '');
  const cluster: Record<string, unknown> =
    address.form === 'sni' ? { server: base, 'tls-server-name': address.serverName } : { server: `${base}/k8s/clusters/${encodeURIComponent(s.cluster)}` };
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
  const parsed = parseCommandArgs<RunnerFlagValues & KubeconfigFlagValues>('kubeconfig', args, kubeconfigFlags, kubeconfigUsage, io);
  if ('exit' in parsed) return parsed.exit;
  const { flags } = parsed;
  const loaded = loadOrExit('kubeconfig', io, () => {
    const settings = resolveRunnerSettings(flags, io.env);
    return { settings, ...kubeconfigAddress(settings, flags, io.env) };
  });
  if ('exit' in loaded) return loaded.exit;
  const { settings, address, note } = loaded.value;
  if (note !== undefined) io.stderr.write(`pipeops-tunnel kubeconfig: ${note}\n`);
  io.stdout.write(stringify(buildKubeconfig(settings, flags.name ?? `pipeops-${settings.cluster}`, address)));
  return ExitCode.ok;
}
