// Child processes of the harness: every one is registered, its output goes
// to a log file of the run (and is kept in memory to wait for a printed
// line, or read back from the file: `output: 'file'`), and all of them are
// killed at the end — on success, on failure and on SIGINT/SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, createWriteStream, openSync, readFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Folder for `<name>.log` (stdout and stderr). */
  logDir: string;
  /** Also echo every line to the console (prefixed). */
  echo?: boolean;
  /** `pipe` to write to the child's stdin (`proc.child.stdin`). Default `ignore`. */
  stdin?: 'pipe' | 'ignore';
  /**
   * `pipe` (default): output comes through this process, kept in memory
   * line by line. `file`: the child writes its log file itself, and lines
   * are read from the file when asked for: a benchmark's relays print an
   * audit line per request, which this process would otherwise read,
   * split and keep, its CPU and heap counted as the runner's, and a full
   * pipe would stall the relay's synchronous log writes.
   */
  output?: 'pipe' | 'file';
}

/** How often a `file`-output process's log is read while waiting for a line, ms. */
const FILE_POLL_MS = 20;

export class Proc {
  readonly #lines: string[] = [];
  readonly exited: Promise<number | null>;
  #wakers: Array<() => void> = [];
  #log: WriteStream | undefined;
  /** Set when the child writes its log file itself (`output: 'file'`). */
  readonly #logFile: string | undefined;
  readonly name: string;
  readonly child: ChildProcess;

  constructor(name: string, child: ChildProcess, logFile: string, echo: boolean, output: 'pipe' | 'file' = 'pipe') {
    this.name = name;
    this.child = child;
    if (output === 'file') this.#logFile = logFile;
    else this.#log = createWriteStream(logFile, { flags: 'a' });
    const onData = (stream: NodeJS.ReadableStream | null) => {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (data: string) => {
        this.#log?.write(data);
        const parts = (partial + data).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) {
          this.#lines.push(line);
          if (echo) console.log(`    [${name}] ${line}`);
        }
        for (const wake of this.#wakers.splice(0)) wake();
      });
    };
    onData(child.stdout);
    onData(child.stderr);
    // The log is closed on 'close', not on 'exit': output can still come through the pipes after 'exit',
    // and a write after the log's end was an unhandled 'error' that ended the whole run.
    let ending = '';
    child.once('close', () => this.#closeLog(ending));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        running.delete(this);
        ending = `\n[harness] ${name} exited code=${code} signal=${signal}\n`;
        for (const wake of this.#wakers.splice(0)) wake();
        resolve(code);
      });
      child.once('error', (err) => {
        running.delete(this);
        ending = `\n[harness] ${name} failed to start: ${err.message}\n`;
        for (const wake of this.#wakers.splice(0)) wake();
        resolve(-1);
      });
    });
  }

  /** Every line printed so far (stdout and stderr), in order. */
  get lines(): string[] {
    if (this.#logFile === undefined) return this.#lines;
    let text: string;
    try {
      text = readFileSync(this.#logFile, 'utf8');
    } catch {
      return [];
    }
    const all = text.split('\n');
    all.pop(); // a partial last line (or the empty string after the last newline)
    return all;
  }

  #closeLog(note: string): void {
    if (this.#log !== undefined) this.#log.end(note);
    else if (this.#logFile !== undefined) appendFileSync(this.#logFile, note);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && running.has(this);
  }

  /** Resolves with the first output line (from `from` on) that matches; rejects on exit or timeout. */
  async waitForLine(what: string, match: RegExp | ((line: string) => boolean), timeoutMs: number, from = 0): Promise<string> {
    const test = typeof match === 'function' ? match : (l: string) => match.test(l);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.slice(from).find(test);
      if (found !== undefined) return found;
      if (!this.alive) throw new Error(`${this.name} exited before printing ${what}; last lines:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms; last lines:\n${this.tail()}`);
      await new Promise<void>((wake) => {
        this.#wakers.push(wake);
        setTimeout(wake, Math.min(left, this.#logFile === undefined ? 1_000 : FILE_POLL_MS)).unref();
      });
    }
  }

  /** JSON log records (pino) printed so far. */
  records(from = 0): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.lines.slice(from)) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not JSON */
      }
    }
    return out;
  }

  async waitForRecord(what: string, match: (r: Record<string, unknown>) => boolean, timeoutMs: number, from = 0): Promise<Record<string, unknown>> {
    const line = await this.waitForLine(
      what,
      (l) => {
        if (!l.startsWith('{')) return false;
        try {
          return match(JSON.parse(l) as Record<string, unknown>);
        } catch {
          return false;
        }
      },
      timeoutMs,
      from,
    );
    return JSON.parse(line) as Record<string, unknown>;
  }

  /** Signals the child's process group (falls back to the child alone). */
  signal(sig: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        this.child.kill(sig);
      } catch {
        /* gone */
      }
    }
  }

  tail(n = 15): string {
    return this.lines
      .slice(-n)
      .map((l) => `      ${l}`)
      .join('\n');
  }

  /** Sends `signal`, then SIGKILL after `graceMs`; resolves when it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<number | null> {
    if (!this.alive) return this.exited;
    this.signal(signal);
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    timer.unref();
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

const running = new Set<Proc>();

export function start(name: string, cmd: string, args: string[], opts: StartOptions): Proc {
  // detached: a process group of its own, so a child that signals its group never hits the
  // harness, and stop() reaches wrapper scripts' children too.
  const logFile = join(opts.logDir, `${name.replace(/[^\w.-]/g, '_')}.log`);
  const toFile = opts.output === 'file';
  const fd = toFile ? openSync(logFile, 'a') : undefined;
  const out = fd ?? 'pipe';
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.stdin ?? 'ignore', out, out], detached: true });
  } finally {
    if (fd !== undefined) closeSync(fd); // the child has its own copy
  }
  child.stdin?.on('error', () => {});
  const proc = new Proc(name, child, logFile, opts.echo === true, toFile ? 'file' : 'pipe');
  running.add(proc);
  return proc;
}

/** Kills every process still running (SIGTERM, SIGKILL after `graceMs`), in reverse start order. */
export async function stopAll(graceMs = 3_000): Promise<void> {
  await Promise.all([...running].reverse().map((p) => p.stop('SIGTERM', graceMs)));
}

let hooked = false;
/** On SIGINT/SIGTERM: run `cleanup` once, then exit 130/143. */
export function onInterrupt(cleanup: () => Promise<void>): void {
  if (hooked) return;
  hooked = true;
  let busy = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (busy) return;
      busy = true;
      console.error(`\n[e2e] ${sig}: tearing down`);
      void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  process.on('exit', () => {
    for (const p of running) p.signal('SIGKILL');
  });
}

/** Polls `probe` until it returns a value other than undefined (errors count as "not yet"). */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof FatalError) throw err;
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Thrown from an {@link until} probe: stop polling at once (a process died). */
export class FatalError extends Error {}
