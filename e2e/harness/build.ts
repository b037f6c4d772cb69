// Builds what is missing: kubesim (+ a kubectl of the same minor) with
// e2e/kubesim/build.sh, kwok and helm with e2e/tools-build/build.sh. Both
// scripts cache their outputs under e2e/.cache/bin keyed by version, so a
// second run builds nothing; a first build prints its progress (minutes).
// KUBESIM_BIN, KUBECTL_BIN, KWOK_BIN, HELM_BIN override a binary.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { E2E_DIR, CACHE_DIR } from './paths.ts';

export interface Binaries {
  kubesim: string;
  kubectl: string;
  kwok: string;
  helm: string;
  systemKubectl?: string;
}

const GO_PATH = '/usr/local/go/bin';

function runScript(script: string, outDir: string, label: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    console.log(`[e2e] build: ${label} (${script} ${outDir}) — a first build takes minutes and prints its progress`);
    const child = spawn('bash', [script, outDir], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PATH: `${GO_PATH}:${process.env.PATH ?? ''}`, GOFLAGS: process.env.GOFLAGS ?? '-p=1' },
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      process.stdout.write(d.replace(/^/gm, `    [${label}] `));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${script} exited ${code}`));
      else {
        console.log(`[e2e] build: ${label} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        resolve(stdout);
      }
    });
  });
}

/** `name /path` lines printed by a build script, else the newest executable called `name` under `dir`. */
function locate(name: string, printed: string, dir: string): string | undefined {
  for (const line of printed.split('\n')) {
    const m = /^(\S+)\s+(\/\S+)$/.exec(line.trim());
    if (m?.[1] === name && m[2] !== undefined && existsSync(m[2])) return m[2];
  }
  let best: { path: string; mtime: number } | undefined;
  const walk = (d: string, depth: number) => {
    if (depth > 3 || !existsSync(d)) return;
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory() && !entry.name.endsWith('.tmp') && !entry.name.includes('.tmp.')) walk(p, depth + 1);
      else if (entry.isFile() && entry.name === name) {
        const st = statSync(p);
        if ((st.mode & 0o111) !== 0 && (best === undefined || st.mtimeMs > best.mtime)) best = { path: p, mtime: st.mtimeMs };
      }
    }
  };
  walk(dir, 0);
  return best?.path;
}

export async function ensureBinaries(): Promise<Binaries> {
  const binDir = join(CACHE_DIR, 'bin');
  let kubesim = process.env.KUBESIM_BIN;
  let kubectl = process.env.KUBECTL_BIN;
  if (kubesim === undefined || kubectl === undefined) {
    const script = join(E2E_DIR, 'kubesim', 'build.sh');
    if (!existsSync(script)) throw new Error(`${script} is missing: the kubesim fixture is not in this checkout`);
    const printed = await runScript(script, binDir, 'kubesim');
    kubesim ??= locate('kubesim', printed, binDir);
    kubectl ??= locate('kubectl', printed, binDir);
    if (kubesim === undefined) throw new Error(`kubesim build finished but no kubesim binary under ${binDir}`);
    if (kubectl === undefined) throw new Error(`kubesim build finished but no kubectl binary under ${binDir}`);
  }
  let kwok = process.env.KWOK_BIN;
  let helm = process.env.HELM_BIN;
  if (kwok === undefined || helm === undefined) {
    const script = join(E2E_DIR, 'tools-build', 'build.sh');
    const printed = await runScript(script, binDir, 'tools');
    kwok ??= locate('kwok', printed, binDir);
    helm ??= locate('helm', printed, binDir);
    if (kwok === undefined || helm === undefined) throw new Error(`tools build finished without kwok/helm under ${binDir}`);
  }
  const systemKubectl = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p) && p !== kubectl);
  return { kubesim, kubectl, kwok, helm, ...(systemKubectl !== undefined ? { systemKubectl } : {}) };
}
