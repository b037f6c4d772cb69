import type { Tunnel } from '@pipeops/tunnel-client';
import { parseDurationMs } from '../duration.ts';
import { CliError, ExitCode, exitCodeFor } from '../errors.ts';
import type { CliIo } from '../io.ts';
import { createLogger } from '../logger.ts';
import { onStopSignal } from '../signals.ts';
import { formatFlags, type FlagSpecs } from '../usage.ts';
import { loadOrExit, parseCommandArgs } from './command-args.ts';
import { logLevelFrom, resolveRunnerSettings, runnerFlags, type RunnerFlagValues } from './runner-flags.ts';

/** Flags of `pipeops-tunnel proxy`. */
export const proxyFlags: FlagSpecs = {
  ...runnerFlags,
  listen: { type: 'string', value: 'HOST:PORT', help: 'local address to serve on, port 0 = ephemeral (default 127.0.0.1:8001)' },
  'log-level': { type: 'string', value: 'LEVEL', help: 'fatal|error|warn|info|debug|trace|silent (default info)' },
  debug: { type: 'boolean', help: 'debug logging (same as --log-level debug): one line per request' },
  'no-resume': { type: 'boolean', help: 'end a WATCH or logs -f cut by a tunnel drop instead of resuming it' },
  'resume-max-wait': { type: 'string', value: 'DURATION', help: 'how long after a tunnel drop a WATCH or logs -f is resumed (default 60s)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** `pipeops-tunnel proxy --help`. */
export function proxyUsage(): string {
  return [
    'Usage: pipeops-tunnel proxy --gateway URL --token T --cluster C [--listen 127.0.0.1:8001]',
    '',
    "Serves the cluster's API server on a local plain-HTTP port, like `kubectl proxy`,",
    "through the gateway and the cluster's agent (one WebSocket, one stream per",
    'request; exec, attach and port-forward upgrades included):',
    '  kubectl --server http://127.0.0.1:8001 get pods',
    'A WATCH (kubectl get -w) or a logs -f --timestamps cut by a tunnel drop is',
    'resumed from where it was once the tunnel is back (header x-pipeops-resume: off',
    'opts one request out).',
    '',
    'Flags:',
    formatFlags(proxyFlags),
    '',
    'Logs `proxy listening on URL` (field `url`) once serving.',
    'Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 failure (gateway unreachable,',
    '            address in use), 2 invalid usage, 3 token or cluster rejected by the gateway.',
    '',
  ].join('\n');
}

/** `HOST:PORT`, `[V6]:PORT` or `PORT` (then 127.0.0.1). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? (/^(\d+)$/.test(text) ? [text, undefined, '127.0.0.1', text] : null);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CliError('PT_ERR_CLI_CONFIG', `--listen must be HOST:PORT (port 0-65535), got ${text}`);
  }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '127.0.0.1' : m[2]);
  return { host, port };
}

/** `--resume-max-wait`: a duration (`90s`, `2m`), default 60 s. */
function resumeMaxWait(text: string | undefined): number {
  if (text === undefined) return 60_000;
  const ms = parseDurationMs(text);
  if (ms === undefined) throw new CliError('PT_ERR_CLI_CONFIG', `--resume-max-wait must be a duration such as 60s or 2m, got ${text}`);
  return ms;
}

/** Runs `pipeops-tunnel proxy`; resolves with the exit code. */
export async function runProxy(args: string[], io: CliIo): Promise<number> {
  type Flags = RunnerFlagValues & {
    listen?: string | undefined;
    'log-level'?: string | undefined;
    debug?: boolean | undefined;
    'no-resume'?: boolean | undefined;
    'resume-max-wait'?: string | undefined;
  };
  const parsed = parseCommandArgs<Flags>('proxy', args, proxyFlags, proxyUsage, io);
  if ('exit' in parsed) return parsed.exit;
  const { flags } = parsed;
  const loaded = loadOrExit('proxy', io, () => ({
    settings: resolveRunnerSettings(flags, io.env),
    listen: parseListen(flags.listen ?? '127.0.0.1:8001'),
    level: logLevelFrom(flags['log-level'], flags.debug),
    resume: { enabled: flags['no-resume'] !== true, maxWaitMs: resumeMaxWait(flags['resume-max-wait']) },
  }));
  if ('exit' in loaded) return loaded.exit;
  const { settings, listen, level, resume } = loaded.value;

  const logger = createLogger({ level });
  logger.info({ gateway: settings.gateway.origin, cluster: settings.cluster, caFile: settings.caFile }, 'connecting to the gateway');
  // Loaded only now: --help and usage errors stay fast.
  const { connect } = await import('@pipeops/tunnel-client');
  let tunnel: Tunnel;
  try {
    tunnel = await connect({
      gatewayUrl: settings.gateway.href,
      token: settings.token,
      cluster: settings.cluster,
      ...(settings.ca !== undefined ? { ca: settings.ca } : {}),
      insecureSkipVerify: settings.insecureSkipVerify,
      resume,
      logger,
    });
  } catch (err) {
    const code = (err as { code?: unknown }).code === 'PT_ERR_CLIENT_CONFIG' ? ExitCode.invalidConfig : exitCodeFor(err);
    logger.error({ err, exitCode: code }, 'cannot open the tunnel');
    return code;
  }
  try {
    await tunnel.listen(listen);
  } catch (err) {
    logger.error({ err, host: listen.host, port: listen.port }, 'cannot listen');
    await tunnel.close();
    return ExitCode.failure;
  }
  const t = tunnel;
  let removeSignals = (): void => {};
  const code = await new Promise<number>((resolve) => {
    t.once('closed', (err: Error | undefined) => {
      if (err === undefined) return;
      const c = exitCodeFor(err);
      logger.error({ err, exitCode: c }, 'the tunnel closed');
      resolve(c === ExitCode.failure ? ExitCode.reconnectExhausted : c);
    });
    removeSignals = onStopSignal(logger, () => {
      t.close().then(
        () => resolve(ExitCode.ok),
        (err: unknown) => {
          logger.error({ err }, 'error while closing the tunnel');
          resolve(ExitCode.failure);
        },
      );
    });
  });
  removeSignals();
  await t.close().catch(() => {});
  logger.info({ exitCode: code }, 'proxy stopped');
  return code;
}
