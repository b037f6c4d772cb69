import type { ParseArgsOptionDescriptor } from 'node:util';

/** One flag: its parseArgs descriptor plus what `--help` says about it. */
export interface FlagSpec extends ParseArgsOptionDescriptor {
  /** Placeholder for the value (`FILE`, `URL`); absent for booleans. */
  value?: string;
  help: string;
}
export type FlagSpecs = Record<string, FlagSpec>;

/** The parseArgs `options` of a flag table. */
export function parseArgsOptions(flags: FlagSpecs): Record<string, ParseArgsOptionDescriptor> {
  const out: Record<string, ParseArgsOptionDescriptor> = {};
  for (const [name, spec] of Object.entries(flags)) {
    out[name] = { type: spec.type, ...(spec.short !== undefined ? { short: spec.short } : {}) };
  }
  return out;
}

/** Formats the flags of a command for `--help`. */
export function formatFlags(flags: FlagSpecs): string {
  const rows = Object.entries(flags).map(([name, spec]) => {
    const short = spec.short !== undefined ? `-${spec.short}, ` : '    ';
    return [`${short}--${name}${spec.value !== undefined ? ` ${spec.value}` : ''}`, spec.help] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, h]) => `  ${l.padEnd(width)}${h}`).join('\n');
}

/** The commands `pipeops-tunnel --help` lists. */
export const COMMANDS: ReadonlyArray<readonly [string, string]> = [
  ['connect', 'run the agent: dial the gateway and serve the cluster through the tunnel'],
  ['gateway', 'run the relay that agents connect to and runners reach clusters through'],
  ['proxy', "serve a cluster's API server on a local port through the gateway (like kubectl proxy)"],
  ['kubeconfig', "print a kubeconfig for a cluster's gateway endpoint (URL/k8s/clusters/C)"],
  ['status', 'the local agent (ready, tunnel, failures, API server), or a cluster as the gateway sees it'],
  ['doctor', 'check step by step what the agent (or a runner) needs, and say how to fix what fails'],
];

/** `pipeops-tunnel --help`. */
export function mainUsage(): string {
  const width = Math.max(...COMMANDS.map(([c]) => c.length)) + 2;
  return [
    'Usage: pipeops-tunnel <command> [flags]',
    '',
    'Commands:',
    ...COMMANDS.map(([c, h]) => `  ${c.padEnd(width)}${h}`),
    '',
    'Flags:',
    '  -h, --help     show help (also: pipeops-tunnel <command> --help)',
    '  -v, --version  print the version',
    '',
    'Exit codes: 0 clean shutdown, 1 failure, 2 invalid configuration or usage,',
    '            3 credentials rejected, 4 reconnect attempts exhausted.',
    '',
  ].join('\n');
}
