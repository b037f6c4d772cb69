import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type AddressInfo, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { spawnLogged, type LoggedProcess } from '@pipeops/tunnel-testkit';

/** The real launcher, run with this Node (24). */
export const BIN = fileURLToPath(new URL('../bin/pipeops-tunnel.js', import.meta.url));
/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A minimal environment: nothing of the runner's PIPEOPS_* or proxy variables leaks in. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'LANG']) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command that prints one JSON document when its stdout is not a TTY (status, doctor), and parses it. */
export async function runCliJson<T>(args: string[], env: Record<string, string>): Promise<{ code: number | null; json: T; stdout: string; stderr: string }> {
  const r = await runCli(args, cleanEnv(env));
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`${args[0] ?? 'the command'} did not print JSON (exit ${String(r.code)}):\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, json, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI to completion. */
export async function runCli(args: string[], env: Record<string, string> = cleanEnv()): Promise<RunResult> {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

/** A long-running CLI child whose stdout JSON log records can be awaited. */
export type CliProcess = LoggedProcess;

/**
 * Starts the CLI (by default the workspace's launcher on this Node; `command`
 * runs another, e.g. an installed `pipeops-tunnel`); the child is killed at
 * the end of the test if still running.
 */
export function startCli(t: TestContext, args: string[], env: Record<string, string>, command: string[] = [process.execPath, BIN]): CliProcess {
  const p = spawnLogged(command[0]!, [...command.slice(1), ...args], { env });
  t.after(async () => {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  });
  return p;
}

/** A temporary directory removed after the test. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'pt-cli-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a file into `dir` and returns its path. */
export function writeFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/**
 * A TCP server on 127.0.0.1 that counts the dial attempts it sees: connections
 * that send a request (a tunnel dial always starts with its HTTP upgrade).
 * A connection that closes without a byte is not counted: with many test
 * files running at once, another test's agent may still be probing a port it
 * used, and the kernel may have handed that port number to this server.
 */
export async function countingServer(t: TestContext): Promise<{ port: number; connections(): Promise<number> }> {
  let accepted = 0;
  let dials = 0;
  const pending = new Set<Promise<void>>();
  const server: Server = createServer((s) => {
    accepted++;
    const settled = new Promise<void>((resolve) => {
      s.once('data', () => {
        dials++;
        s.destroy();
        resolve();
      });
      s.once('close', () => resolve());
      s.on('error', () => resolve());
    });
    pending.add(settled);
    void settled.then(() => pending.delete(settled));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    // Connections are accepted in order: once our own probe (which sends nothing) is accepted, any
    // earlier one has been too; each then either sent its request or closed.
    async connections() {
      const before = accepted;
      const probe = netConnect(port, '127.0.0.1');
      probe.on('connect', () => probe.end());
      await once(probe, 'close');
      const deadline = Date.now() + 5_000;
      while (accepted === before && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      await Promise.race([Promise.all([...pending]), new Promise((r) => setTimeout(r, 5_000))]);
      return dials;
    },
  };
}
