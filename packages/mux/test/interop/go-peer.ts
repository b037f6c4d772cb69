// Builds and runs the hashicorp/yamux reference peer in ./go (see main.go)
// for the interop tests. Not a test file itself.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const GO_DIR = fileURLToPath(new URL('./go/', import.meta.url));
/** Deadline for one expected stdout line or exit of the peer: 30 s. */
const LINE_TIMEOUT_MS = 30_000;

/** Finds `go` on PATH; throws a message saying how to get it (CI installs Go; the test fails, never skips). */
export function findGo(): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'go');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* keep looking */
    }
  }
  throw new Error(
    'Go toolchain not found on PATH: the hashicorp/yamux interop tests build the reference peer in ' +
      `${GO_DIR} with \`go build\`. Install Go >= 1.23 (e.g. /usr/local/go/bin) and put it on PATH.`,
  );
}

/** The built peer binary and the temporary folder holding it. */
export interface BuiltPeer {
  binary: string;
  remove(): Promise<void>;
}

/** `go build` the peer into a fresh temporary folder (the Go build cache makes repeat builds fast). */
export async function buildPeer(): Promise<BuiltPeer> {
  const go = findGo();
  const dir = await mkdtemp(path.join(tmpdir(), 'yamux-peer-'));
  const binary = path.join(dir, 'yamux-peer');
  try {
    await promisify(execFile)(go, ['build', '-o', binary, '.'], {
      cwd: GO_DIR,
      env: { ...process.env, GOFLAGS: '-mod=mod -buildvcs=false' },
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`go build of the yamux interop peer failed:\n${stderr}`, { cause: err });
  }
  return { binary, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** How a peer process ended. */
export interface PeerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** A running peer: its stdout lines on demand, its exit, and kill(). */
export interface RunningPeer {
  child: ChildProcess;
  /** Resolves with the next stdout line starting with `prefix` (earlier non-matching lines are dropped). Rejects if the peer exits first. */
  line(prefix: string): Promise<string>;
  /** Resolves when the peer has exited (never rejects). */
  readonly exited: Promise<PeerExit>;
  /** Everything the peer wrote on stderr so far. */
  stderr(): string;
  /** SIGKILL if still running, then wait for the exit. */
  kill(): Promise<void>;
}

/** Starts the peer with `args` (flags, then the scenario's positional args). */
export function startPeer(binary: string, args: readonly string[]): RunningPeer {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    stderr += s;
  });

  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  let done = false;
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    wake();
  });

  const exited = new Promise<PeerExit>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      done = true;
      wake();
      resolve({ code, signal, stderr });
    };
    child.once('close', finish);
    child.once('error', (err) => {
      stderr += `spawn failed: ${err.message}\n`;
      finish(null, null);
    });
  });

  const line = async (prefix: string): Promise<string> => {
    const deadline = Date.now() + LINE_TIMEOUT_MS;
    for (;;) {
      const i = lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) {
        const [found] = lines.splice(0, i + 1).slice(-1);
        return found!;
      }
      if (done) throw new Error(`yamux-peer ${args.join(' ')} exited without printing "${prefix}…"; stderr:\n${stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`yamux-peer ${args.join(' ')}: no "${prefix}…" line within ${LINE_TIMEOUT_MS} ms; stderr:\n${stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };

  return {
    child,
    line,
    exited,
    stderr: () => stderr,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
