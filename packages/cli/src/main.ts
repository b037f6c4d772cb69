import { runConnect } from './commands/connect.ts';
import { runDoctor } from './commands/doctor.ts';
import { runGateway } from './commands/gateway.ts';
import { runKubeconfig } from './commands/kubeconfig.ts';
import { runProxy } from './commands/proxy.ts';
import { runStatus } from './commands/status.ts';
import { ExitCode } from './errors.ts';
import { processIo, type CliIo } from './io.ts';
import { mainUsage } from './usage.ts';
import { VERSION } from './version.ts';

const commands: Record<string, (args: string[], io: CliIo) => Promise<number>> = {
  connect: runConnect,
  gateway: runGateway,
  proxy: runProxy,
  kubeconfig: runKubeconfig,
  status: runStatus,
  doctor: runDoctor,
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
    if (sub !== undefined && commands[sub] !== undefined) return commands[sub](['--help'], io);
    io.stdout.write(mainUsage());
    return ExitCode.ok;
  }
  if (first === '--version' || first === '-v' || first === 'version') {
    io.stdout.write(`pipeops-tunnel ${VERSION}\n`);
    return ExitCode.ok;
  }
  const command = commands[first];
  if (command === undefined) {
    io.stderr.write(`pipeops-tunnel: unknown ${first.startsWith('-') ? 'flag' : 'command'} ${first}\n\n${mainUsage()}`);
    return ExitCode.invalidConfig;
  }
  return command(rest, io);
}
