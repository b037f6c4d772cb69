import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import type { LogLevel } from './formats.ts';

/**
 * Paths pino replaces with `[Redacted]`: tokens and Authorization headers
 * wherever libraries put them (top level, one or two levels down, request
 * and response headers).
 */
export const REDACT_PATHS = [
  'token', '*.token', '*.*.token',
  'password', '*.password',
  'authorization', '*.authorization', 'Authorization', '*.Authorization',
  'headers.authorization', '*.headers.authorization', '*.*.headers.authorization',
  'headers.Authorization', '*.headers.Authorization',
  'headers["proxy-authorization"]', '*.headers["proxy-authorization"]',
  'headers.cookie', '*.headers.cookie',
  'key', 'tls.key', '*.tls.key',
];

export interface LoggerOptions {
  level: LogLevel;
  /** Human-readable output (pino-pretty, synchronous) instead of JSON lines. Default: when stdout is a TTY. */
  pretty?: boolean;
  /** Where JSON lines go. Default: stdout (fd 1), synchronous. */
  destination?: NodeJS.WritableStream;
}

/**
 * The process logger: JSON lines on stdout, or pino-pretty used as a
 * synchronous stream (not a worker transport) when stdout is a TTY.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const options = {
    level: opts.level,
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
  };
  const usePretty = opts.pretty ?? process.stdout.isTTY === true;
  if (usePretty) {
    // Loaded only for a terminal: pino-pretty costs ~14 MB of RSS that an agent in a pod (JSON lines) never needs.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    return pino(options, pretty({ sync: true, colorize: true, destination: 1, translateTime: 'SYS:HH:MM:ss.l' }));
  }
  return pino(options, opts.destination ?? pino.destination({ dest: 1, sync: true }));
}
