// What a failed run prints so that CI's output alone says what happened (the
// rig's folder, logs and all, is removed when the run ends): per process,
// the lines logged at warn and above, and every error its records carry
// (audit records of exchanges that ended badly), counted by message with
// the numbers in it masked. A rare message's records are printed whole:
// among hundreds of expected runner aborts, the one that broke a stream is
// usually the message seen once.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const WARN = 40;
/** Records of a message seen at most this often are printed whole. */
const RARE = 2;

interface LogRecord {
  level?: number;
  error?: unknown;
  err?: { message?: unknown };
}

/**
 * The report for every `*.log` in `logDir` (pino JSON lines; other lines
 * skipped); '' when nothing was logged at warn or with an error. Every
 * record that names one of `requestIds` (the failed streams') is printed
 * whole too.
 */
export function logProblems(logDir: string, requestIds: readonly string[] = [], maxLines = 30): string {
  const out: string[] = [];
  for (const file of readdirSync(logDir)
    .filter((f) => f.endsWith('.log'))
    .sort()) {
    const warnings: string[] = [];
    const named: string[] = [];
    const byMessage = new Map<string, string[]>();
    for (const line of readFileSync(join(logDir, file), 'utf8').split('\n')) {
      const record = parse(line);
      if (record === undefined) continue;
      if ((record.level ?? 0) >= WARN) warnings.push(line);
      if (requestIds.some((id) => line.includes(`"${id}"`))) named.push(line);
      const message = typeof record.error === 'string' ? record.error : typeof record.err?.message === 'string' ? record.err.message : undefined;
      if (message === undefined) continue;
      const key = message.replace(/\d+/g, 'N');
      const lines = byMessage.get(key) ?? [];
      lines.push(line);
      byMessage.set(key, lines);
    }
    if (warnings.length === 0 && byMessage.size === 0 && named.length === 0) continue;
    out.push(`${file}:`);
    if (named.length > 0) out.push('  records of the failed streams:', ...named.map((l) => `    ${l}`));
    if (warnings.length > 0)
      out.push(
        `  ${warnings.length} lines at warn and above${warnings.length > maxLines ? `, the last ${maxLines}` : ''}:`,
        ...warnings.slice(-maxLines).map((l) => `    ${l}`),
      );
    const counted = [...byMessage].sort((a, b) => b[1].length - a[1].length);
    if (counted.length > 0) out.push('  errors in its records, by message:');
    for (const [message, lines] of counted) {
      out.push(`    ${String(lines.length).padStart(6)}  ${message}`);
      if (lines.length <= RARE) out.push(...lines.map((l) => `            ${l}`));
    }
  }
  return out.join('\n');
}

function parse(line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as LogRecord;
  } catch {
    return undefined;
  }
}

/**
 * Whether the agent's log in `logDir` (`agent-*.log`) holds its record of
 * request `id` answered 502 because the API server reset or closed the
 * connection under it.
 */
export function agentRecordedUpstreamReset(logDir: string, id: string): boolean {
  for (const file of readdirSync(logDir).filter((f) => f.startsWith('agent') && f.endsWith('.log'))) {
    for (const line of readFileSync(join(logDir, file), 'utf8').split('\n')) {
      if (!line.includes(`"${id}"`)) continue;
      const record = parse(line) as (LogRecord & { requestId?: unknown; status?: unknown }) | undefined;
      if (record?.requestId === id && record.status === 502 && typeof record.error === 'string' && isUpstreamResetError(record.error)) return true;
    }
  }
  return false;
}

/** The errors of an API-server connection reset or closed under a request, as the agent records them (and names them in its 502). */
const UPSTREAM_RESET_ERRORS: ReadonlySet<string> = new Set(['read ECONNRESET', 'write ECONNRESET', 'write EPIPE', 'other side closed']);

/** Whether `error` (an agent record's, or the cause in its 502's message) is the API server resetting or closing the connection. */
export function isUpstreamResetError(error: string): boolean {
  return UPSTREAM_RESET_ERRORS.has(error);
}
