import { ExitCode } from './errors.ts';
import { processIo, type CliIo } from './io.ts';
import { mainUsage } from './usage.ts';
import { VERSION } from './version.ts';

type Command = (args: string[], io: CliIo) => Promise<number>;

/**
 * Each command's module, loaded only when it runs: a gateway does not load
 * the agent (undici's pool, the kube path), an agent does not load the
 * gateway, and both keep that code out of their RSS for their lifetime.
 */
const commands: Record<string, () => Promise<Command>> = {
  connect: async () => (await import('./commands/connect.ts')).runConnect,
  gateway: async () => (await import('./commands/gateway.ts')).runGateway,
  proxy: async () => (await import('./commands/proxy.ts')).runProxy,
  kubeconfig: async () => (await import('./commands/kubeconfig.ts')).runKubeconfig,
  status: async () => (await import('./commands/status.ts')).runStatus,
  doctor: async () => (await import('./commands/doctor.ts')).runDoctor,
};

/**
 * The `pipeops-tunnel` command. Resolves with the process exit code
 * (0 ok, 1 failure, 2 invalid configuration or usage, 3 credentials
 * rejected, 4 reconnect attempts exhausted).
 */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr.write(mainUsage());
    return ExitCode.invalidConfig;
  }
  if (first === '--help' || first === '-h') {
    io.stdout.write(mainUsage());
    return ExitCode.ok;
  }
  if (first === 'help') {
    const sub = rest[0];
    const load = sub === undefined ? undefined : commands[sub];
    if (load !== undefined) return (await load())(['--help'], io);
    io.stdout.write(mainUsage());
    return ExitCode.ok;
  }
  if (first === '--version' || first === '-v' || first === 'version') {
    io.stdout.write(`pipeops-tunnel ${VERSION}\n`);
    return ExitCode.ok;
  }
  const load = commands[first];
  if (load === undefined) {
    io.stderr.write(`pipeops-tunnel: unknown ${first.startsWith('-') ? 'flag' : 'command'} ${first}\n\n${mainUsage()}`);
    return ExitCode.invalidConfig;
  }
  return (await load())(rest, io);
}
