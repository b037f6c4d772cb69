import { parseArgs } from 'node:util';
import { CliError, ExitCode } from '../errors.ts';
import type { CliIo } from '../io.ts';
import { parseArgsOptions, type FlagSpecs } from '../usage.ts';

/** A command's first steps ended the run: resolve with this exit code. */
export interface Exit {
  exit: number;
}

/**
 * Parses `args` against a command's flag table (strict, no positionals). A
 * usage error is reported on stderr with the usage text (`PT_ERR_CLI_USAGE`,
 * exit 2); `--help` prints the usage on stdout (exit 0). Otherwise returns the
 * flags' values.
 */
export function parseCommandArgs<F>(command: string, args: string[], specs: FlagSpecs, usage: () => string, io: CliIo): { flags: F } | Exit {
  let values: F & { help?: boolean | undefined };
  try {
    values = parseArgs({ args, options: parseArgsOptions(specs), strict: true, allowPositionals: false }).values as typeof values;
  } catch (err) {
    const usageError = new CliError('PT_ERR_CLI_USAGE', (err as Error).message, { cause: err });
    io.stderr.write(`pipeops-tunnel ${command}: ${usageError.message}\n\n${usage()}`);
    return { exit: usageError.exitCode };
  }
  if (values.help === true) {
    io.stdout.write(usage());
    return { exit: ExitCode.ok };
  }
  return { flags: values };
}

/** Runs `load()` (the command's configuration); a {@link CliError} is reported on stderr and becomes its exit code, anything else is rethrown. */
export function loadOrExit<T>(command: string, io: CliIo, load: () => T): { value: T } | Exit {
  try {
    return { value: load() };
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    io.stderr.write(`pipeops-tunnel ${command}: ${err.message}\n`);
    return { exit: err.exitCode };
  }
}
