// `pnpm pack:all [--out DIR]`: the published packages as npm tarballs.
//
// The workspace runs its TypeScript sources (each package's `exports` points
// at src/*.ts, which Node 24 strips); a published package must not, because
// Node refuses to strip types under node_modules. So each package is compiled
// to JavaScript and declarations in its lib/ (tsconfig.publish.json); the
// command itself runs from its bundle (tools/bundle.ts, packages/cli/dist),
// built here too. `pnpm pack` writes the manifest a user installs: `publishConfig.exports`
// (and the CLI's `publishConfig.bin`) in place of the workspace's, versions
// in place of `workspace:*`, the `files` the package lists, and the
// project's LICENSE.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** The published packages (directory under packages/), dependencies before their dependents. */
export const PUBLISHED = ['mux', 'protocol', 'agent', 'gateway', 'tunnel-client', 'cli'] as const;

/** Runs a command to completion (in `cwd`, default the repository root) and returns its stdout; throws with its output when it fails. */
export function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const cwd = o.cwd ?? ROOT;
  const r = spawnSync(cmd, args, { cwd, env: o.env ?? process.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed with ${r.status ?? r.signal ?? r.error?.message}:\n${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Compiles every published package afresh (stale files of removed sources never ship) and packs it into `outDir`; returns the tarballs' paths by package directory. */
export function packAll(outDir: string): Map<string, string> {
  mkdirSync(outDir, { recursive: true });
  for (const dir of PUBLISHED) rmSync(join(ROOT, 'packages', dir, 'lib'), { recursive: true, force: true });
  run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', '--force', 'packages/cli/tsconfig.publish.json']);
  run(process.execPath, [join(ROOT, 'tools', 'bundle.ts')]);
  const tarballs = new Map<string, string>();
  for (const dir of PUBLISHED) {
    const pkg = join(ROOT, 'packages', dir);
    const license = join(pkg, 'LICENSE');
    const copied = !existsSync(license);
    if (copied) copyFileSync(join(ROOT, 'LICENSE'), license);
    try {
      const out = run('pnpm', ['pack', '--pack-destination', outDir, '--json'], { cwd: pkg });
      tarballs.set(dir, resolve(outDir, (JSON.parse(out) as { filename: string }).filename));
    } finally {
      if (copied) rmSync(license, { force: true });
    }
  }
  return tarballs;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: join(ROOT, 'dist', 'packages') } } });
  for (const [dir, file] of packAll(resolve(values.out))) process.stdout.write(`${dir.padEnd(14)} ${file}\n`);
}
