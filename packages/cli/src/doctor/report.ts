// What `status` and `doctor` print: a list of checks, as text on a terminal
// (one line each, ✔ ✖ ! -, the fix indented under a failure) or as JSON
// when stdout is not a terminal. Every line goes through `redact` first:
// secrets the command knows are never printed, even inside an error message.
import { CliError } from '../errors.ts';
import type { CliIo } from '../io.ts';

/** A check's outcome. `skip`: not run, because a check it needs failed (that one is the failure). */
export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

/** One check: a stable id (for scripts), a title, what was found and, when it did not pass, what to do. */
export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

/** `-o` values. */
export type OutputFormat = 'text' | 'json';

/** `-o json|text`, else text on a terminal and JSON otherwise; throws `PT_ERR_CLI_CONFIG` for another value. */
export function outputFormat(flag: string | undefined, io: CliIo): OutputFormat {
  if (flag === undefined) return (io.stdout as { isTTY?: boolean }).isTTY === true ? 'text' : 'json';
  if (flag === 'json' || flag === 'text') return flag;
  throw new CliError('PT_ERR_CLI_CONFIG', `-o must be json or text, got ${flag}`);
}

const MARKS: Record<CheckStatus, string> = { pass: '✔', fail: '✖', warn: '!', skip: '-' };

/** The checks as text: `✔ title  detail`, and under a warning or failure `  → fix`. */
export function formatChecks(checks: readonly CheckResult[]): string {
  const width = Math.max(0, ...checks.map((c) => c.title.length)) + 2;
  const lines: string[] = [];
  for (const c of checks) {
    const [first = '', ...rest] = c.detail.split('\n');
    lines.push(`${MARKS[c.status]} ${c.title.padEnd(width)}${first}`);
    for (const more of rest) lines.push(`  ${''.padEnd(width)}${more}`);
    if (c.fix !== undefined && (c.status === 'fail' || c.status === 'warn')) lines.push(`  ${''.padEnd(width)}→ ${c.fix}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Every check passed or warned (skips follow from a failure, so they never stand alone). */
export function allPassed(checks: readonly CheckResult[]): boolean {
  return checks.every((c) => c.status === 'pass' || c.status === 'warn');
}

/** `text` with every secret (at least 4 characters long) replaced by `[Redacted]`. */
export function redact(text: string, secrets: ReadonlyArray<string | undefined>): string {
  let out = text;
  for (const s of secrets) if (s !== undefined && s.length >= 4) out = out.replaceAll(s, '[Redacted]');
  return out;
}

/** Writes `text` to stdout, redacted. */
export function print(io: CliIo, text: string, secrets: ReadonlyArray<string | undefined>): void {
  io.stdout.write(redact(text, secrets));
}
