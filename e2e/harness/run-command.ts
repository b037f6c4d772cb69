// Runs a client command (kubectl, helm) to completion with a clean
// environment: no KUBECONFIG/proxies/KUBERNETES_* from the caller, and a
// HOME of its own (no ~/.kube discovery cache shared between targets).
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface CommandOptions {
  env?: Record<string, string>;
  home: string;
  stdin?: string | Buffer;
  timeoutMs?: number;
  cwd?: string;
}

const LEAKY_ENV = /^(KUBECONFIG|KUBERNETES_.*|HTTPS?_PROXY|NO_PROXY|ALL_PROXY|KUBECTL_.*|HELM_.*)$/i;

export function cleanEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!LEAKY_ENV.test(k)) env[k] = v;
  env.HOME = home;
  return { ...env, ...extra };
}

export function runCommand(bin: string, args: string[], opts: CommandOptions): Promise<CommandResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(bin, args, { env: cleanEnv(opts.home, opts.env), cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      stderr += `\n[harness] killed after ${opts.timeoutMs} ms`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      stderr += `\n[harness] ${err.message}`;
    });
    child.stdin.on('error', () => {
      /* the command may exit before reading stdin */
    });
    child.stdin.end(opts.stdin ?? '');
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal !== null ? -1 : 0), stdout, stderr, ms: performance.now() - started });
    });
  });
}
