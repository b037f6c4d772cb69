import { pino, type Level, type Logger } from 'pino';

/** One parsed pino record. */
export type LogRecord = Record<string, unknown> & { level?: number; msg?: string };

/**
 * A pino destination that keeps every line: pass it as `pino(opts, logs)` or
 * use `logs.logger()`. Assert on parsed records (`records`, `find`) or on the
 * raw text (`text()`, e.g. "the token never appears").
 */
export interface LogCollector {
  /** pino's destination contract: one JSON line per call. */
  write(line: string): void;
  /** Raw lines, in order. */
  readonly lines: string[];
  /** Parsed records, in order (lines that are not JSON are skipped). */
  readonly records: LogRecord[];
  /** Everything written, joined. */
  text(): string;
  /** The first record matching `pred`, if any. */
  find(pred: (r: LogRecord) => boolean): LogRecord | undefined;
  /** A pino logger writing here. Default level `'trace'`. */
  logger(level?: Level): Logger;
}

/** A fresh {@link LogCollector}. */
export function collectLogs(): LogCollector {
  const lines: string[] = [];
  const records: LogRecord[] = [];
  const collector: LogCollector = {
    lines,
    records,
    write(line: string) {
      for (const one of line.split('\n')) {
        if (one === '') continue;
        lines.push(one);
        try {
          records.push(JSON.parse(one) as LogRecord);
        } catch {
          // not a JSON line (a pretty printer?): kept in `lines` only
        }
      }
    },
    text: () => lines.join('\n'),
    find: (pred) => records.find(pred),
    logger: (level: Level = 'trace') => pino({ level }, collector),
  };
  return collector;
}
