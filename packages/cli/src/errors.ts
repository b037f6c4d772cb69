/** Process exit codes of the `pipeops-tunnel` command (a public surface: scripts depend on them). */
export const ExitCode = {
  /** Clean shutdown. */
  ok: 0,
  /** Unexpected failure. */
  failure: 1,
  /** Invalid configuration or usage (unknown flag, bad value): nothing was dialed. */
  invalidConfig: 2,
  /** The gateway rejected the agent's credentials (`PT_ERR_AUTH_REJECTED`). */
  authRejected: 3,
  /** Reconnect attempts exhausted (`PT_ERR_RECONNECT_EXHAUSTED`). */
  reconnectExhausted: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Stable codes of the CLI's own errors. */
export const cliErrorCodes = {
  PT_ERR_CLI_USAGE: { exitCode: ExitCode.invalidConfig, message: 'invalid command line (unknown command or flag, missing flag value)' },
  PT_ERR_CLI_CONFIG: { exitCode: ExitCode.invalidConfig, message: 'invalid configuration (names the key and the reason)' },
  PT_ERR_CLI_CONFIG_FILE: { exitCode: ExitCode.invalidConfig, message: 'configuration file unreadable or not valid YAML' },
} as const;
export type CliErrorCode = keyof typeof cliErrorCodes;

/** An error raised by the CLI before anything is started; maps to an exit code. */
export class CliError extends Error {
  readonly code: CliErrorCode;
  readonly exitCode: ExitCode;
  constructor(code: CliErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.code = code;
    this.exitCode = cliErrorCodes[code].exitCode;
  }
}

/**
 * Maps what ended a service to an exit code: `PT_ERR_AUTH_REJECTED` → 3,
 * `PT_ERR_RECONNECT_EXHAUSTED` → 4, `PT_ERR_CONFIG`, `PT_ERR_GATEWAY_CONFIG`, `PT_ERR_TOKENS_INVALID` (a library's option or tokens-file check) → 2, a {@link CliError} → its code, anything else → 1.
 */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'PT_ERR_CONFIG' || code === 'PT_ERR_GATEWAY_CONFIG' || code === 'PT_ERR_TOKENS_INVALID') return ExitCode.invalidConfig;
  if (code === 'PT_ERR_AUTH_REJECTED') return ExitCode.authRejected;
  if (code === 'PT_ERR_RECONNECT_EXHAUSTED') return ExitCode.reconnectExhausted;
  return ExitCode.failure;
}
