import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import type { LogLevel } from './formats.ts';

/**
 * Keys whose values are replaced with `[Redacted]` wherever they appear in a
 * logged object, up to {@link REDACT_DEPTH} levels down: tokens, passwords,
 * private keys and the Authorization, Proxy-Authorization and Cookie headers
 * (as `headers.authorization` and the like, or on their own).
 */
export const REDACTED_KEYS: ReadonlySet<string> = new Set([
  'token',
  'password',
  'key',
  'authorization',
  'Authorization',
  'proxy-authorization',
  'Proxy-Authorization',
  'cookie',
  'Cookie',
]);
const REDACT_DEPTH = 4;
const CENSOR = '[Redacted]';

/**
 * `obj` with every {@link REDACTED_KEYS} value censored, copying only the
 * plain objects on the way to a secret (the caller's objects are never
 * changed; errors, arrays and class instances are left to their
 * serializers). One pass over the keys: a record with nothing to hide
 * (an audit record, every request) costs a lookup per key, where pino's
 * path-based redaction walked twenty wildcard paths per record and was a
 * quarter of the agent's CPU per request.
 */
export function redactSecrets<T>(obj: T, depth = 0): T {
  if (obj === null || typeof obj !== 'object' || depth >= REDACT_DEPTH) return obj;
  const proto = Object.getPrototypeOf(obj) as unknown;
  if (proto !== Object.prototype && proto !== null) return obj;
  let out: Record<string, unknown> | undefined;
  const src = obj as Record<string, unknown>;
  for (const k in src) {
    const v = src[k];
    let r: unknown = v;
    if (REDACTED_KEYS.has(k)) {
      if (v !== undefined) r = CENSOR;
    } else if (v !== null && typeof v === 'object') {
      r = redactSecrets(v, depth + 1);
    }
    if (r !== v) {
      out ??= { ...src };
      out[k] = r;
    }
  }
  return (out ?? obj) as T;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Human-readable output (pino-pretty, synchronous) instead of JSON lines. Default: when stdout is a TTY. */
  pretty?: boolean;
  /** Where JSON lines go. Default: stdout (fd 1), written in batches (see `bufferedStdout`). */
  destination?: NodeJS.WritableStream;
}

/**
 * The process logger: JSON lines on stdout (secrets censored by
 * {@link redactSecrets}), or pino-pretty used as a
 * synchronous stream (not a worker transport) when stdout is a TTY and
 * pino-pretty is installed (the container image carries the command's
 * bundle alone: JSON lines there, terminal or not).
 */
export function createLogger(opts: LoggerOptions): Logger {
  const options = {
    level: opts.level,
    base: { pid: process.pid },
    formatters: { log: redactSecrets, bindings: redactSecrets },
  };
  const pretty = (opts.pretty ?? process.stdout.isTTY === true) ? loadPretty() : undefined;
  if (pretty !== undefined) return pino(options, pretty({ sync: true, colorize: true, destination: 1, translateTime: 'SYS:HH:MM:ss.l' }));
  return pino(options, opts.destination ?? bufferedStdout());
}

/**
 * pino-pretty, or undefined where it is not installed. Loaded only for a
 * terminal: it costs ~14 MB of RSS that an agent in a pod (JSON lines)
 * never needs.
 */
function loadPretty(): typeof PinoPretty | undefined {
  try {
    return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && (err as Error).message.includes("'pino-pretty'")) return undefined;
    throw err;
  }
}

/** Records are held at most this long (ms) before they are written. */
export const LOG_FLUSH_MS = 100;

/** A batch is written once its records hold this many characters. */
const BATCH_CHARS = 8 * 1024;

/**
 * stdout, written in batches: records are gathered and written together
 * once 8 KiB have gathered or {@link LOG_FLUSH_MS} after the first of them,
 * and on exit. One write(2) per record was a sixth of the agent's CPU per
 * request (an audit record per request); a worker-thread write costs a
 * thread hop and a wake-up per record instead. Nothing is held while idle:
 * the flush timer runs only while records wait.
 *
 * The records of a batch are joined here before sonic-boom sees them:
 * sonic-boom measures every string it is given in UTF-8 bytes, which for a
 * record (a concatenated string) meant flattening and scanning it, ~2.5 µs
 * of every request's audit record at 64 in flight (profile). A joined batch
 * is measured once.
 */
function bufferedStdout(): ReturnType<typeof pino.destination> {
  const dest = pino.destination({ dest: 1, sync: true, minLength: BATCH_CHARS });
  const write = dest.write.bind(dest);
  const destFlush = dest.flush.bind(dest);
  const destFlushSync = dest.flushSync.bind(dest);
  let pending: string[] = [];
  let pendingChars = 0;
  // biome-ignore lint/correctness/noUnusedVariables: read by `??=` below (one flush timer at a time)
  let timer: NodeJS.Timeout | undefined;
  /** Hands the gathered records to sonic-boom as one string (written at once when it holds a batch). */
  const handOver = (): void => {
    if (pending.length === 0) return;
    const batch = pending.length === 1 ? (pending[0] as string) : pending.join('');
    pending = [];
    pendingChars = 0;
    write(batch);
  };
  // flush(), not flushSync(): sonic-boom's flushSync also fsyncs, and stdout
  // redirected to a file was synced to disk every 100 ms under load (3 % of
  // the gateway's and the agent's CPU at c=64, their event loops blocked
  // meanwhile). With `sync: true` flush() writes at once, without a sync.
  const flush = (): void => {
    timer = undefined;
    try {
      handOver();
      destFlush();
    } catch {
      /* stdout gone: nothing to do */
    }
  };
  dest.write = (data: string): boolean => {
    pending.push(data);
    pendingChars += data.length;
    if (pendingChars >= BATCH_CHARS) handOver();
    timer ??= setTimeout(flush, LOG_FLUSH_MS).unref();
    return true;
  };
  // A caller's flush (pino's logger.flush(), a fatal path) includes the records gathered here.
  dest.flush = ((cb?: (err?: Error) => void) => {
    handOver();
    destFlush(cb);
  }) as typeof dest.flush;
  dest.flushSync = (): void => {
    handOver();
    destFlushSync();
  };
  process.once('exit', () => {
    try {
      dest.flushSync();
    } catch {
      /* stdout gone: nothing to do */
    }
  });
  return dest;
}
