// The command as the packages ship it: the bundle of tools/bundle.ts runs,
// and an agent started from it loads no code of the gateway, the runner-side
// library or the packages only they use (the bundle is split by command);
// with nothing installed beside it (as in the container image), it logs
// JSON lines even on a terminal. The installed bundle running a gateway and
// an agent end to end is packages/cli/test/pack-install.test.ts, the whole
// real-cluster matrix on it `pnpm e2e --bundle`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Metafile } from 'esbuild';
import { bundleCli, type Bundle } from '../tools/bundle.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The output files `entry` loads, through static and dynamic imports, without main's other commands. */
function loadedBy(metafile: Metafile, entry: string): Set<string> {
  const seen = new Set<string>();
  const stack = [entry];
  while (stack.length > 0) {
    const out = stack.pop()!;
    if (seen.has(out)) continue;
    seen.add(out);
    for (const i of metafile.outputs[out]!.imports) if (i.kind !== 'require-call' && i.path in metafile.outputs) stack.push(i.path);
  }
  return seen;
}

/**
 * The bundle both tests read, built once: one level below a copy of the
 * package's manifest, as in the package (the CLI reads its version from
 * ../package.json), outside the workspace: nothing installed beside it.
 */
let bundle: Bundle & { pkg: string };
before(async () => {
  const pkg = mkdtempSync(join(tmpdir(), 'pt-bundle-'));
  copyFileSync(join(ROOT, 'packages', 'cli', 'package.json'), join(pkg, 'package.json'));
  mkdirSync(join(pkg, 'dist'));
  bundle = { pkg, ...(await bundleCli(join(pkg, 'dist'))) };
});
after(() => rmSync(bundle.pkg, { recursive: true, force: true }));

/** Node code that runs the bundle's `main` with `args` and exits with its code. */
function runMain(main: string, args: string[]): string {
  return `const { main } = await import(${JSON.stringify(pathToFileURL(main).href)}); process.exitCode = await main(${JSON.stringify(args)});`;
}

test("the bundled command runs and an agent started from it loads none of the gateway, the runner library, node-forge, ioredis or undici's package entry", () => {
  const { pkg, main, metafile } = bundle;

  const version = (JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }).version;
  const printed = execFileSync(process.execPath, ['--input-type=module', '-e', runMain(main, ['--version'])], { encoding: 'utf8' });
  assert.equal(printed.trim(), `pipeops-tunnel ${version}`);

  const outputs = Object.keys(metafile.outputs);
  const entryOf = (command: string) => {
    const found = outputs.find((o) => metafile.outputs[o]!.entryPoint?.endsWith(`packages/cli/src/commands/${command}.ts`));
    assert.ok(found, `no output for the ${command} command among ${outputs.join(', ')}`);
    return found;
  };
  const inputsOf = (files: Set<string>) => new Set([...files].flatMap((f) => Object.keys(metafile.outputs[f]!.inputs)));
  const agent = inputsOf(loadedBy(metafile, entryOf('connect')));
  assert.ok(
    [...agent].some((i) => i.includes('packages/agent/src/')),
    'the agent loads its own code',
  );
  assert.ok(
    [...agent].some((i) => i.includes('undici/lib/dispatcher/pool.js')),
    "the agent's undici parts are bundled",
  );
  // undici's package entry (fetch, WebSocket…) stays out: the agent takes three parts of it (undici-parts.ts).
  for (const foreign of [
    'packages/gateway/src/',
    'packages/tunnel-client/src/',
    '/node-forge/',
    '/ioredis/',
    'undici/index.js',
    'undici/lib/web/fetch/index.js',
    'undici/lib/web/websocket/',
  ]) {
    assert.deepEqual(
      [...agent].filter((i) => i.includes(foreign)),
      [],
      `the agent loads ${foreign}`,
    );
  }
  // The gateway's own graph is where node-forge went (for --dev), not into a shared chunk.
  assert.ok([...inputsOf(loadedBy(metafile, entryOf('gateway')))].some((i) => i.includes('/node-forge/')));
});

test('on a terminal, the bundle with no pino-pretty installed beside it logs JSON lines instead of failing', async (t) => {
  const { main } = bundle;
  // A pseudo-terminal from util-linux's script(1); NODE_PATH (pnpm's shims set it) would find the workspace's pino-pretty.
  const command = `${process.execPath} --input-type=module -e '${runMain(main, ['connect'])}'`;
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      PATH: process.env.PATH ?? '',
      PIPEOPS_AGENT_CLUSTER_NAME: 'c1',
      // Nothing listens there: the agent starts, logs, and keeps dialing until it is stopped.
      PIPEOPS_PIPEOPS_API_URL: 'https://127.0.0.1:1',
      PIPEOPS_PIPEOPS_TOKEN: 'bundle-test-token-0123456789abcdef',
      PIPEOPS_AGENT_PORT: '0',
    },
  });
  t.after(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {}
  });
  let out = '';
  for await (const chunk of child.stdout) {
    out += String(chunk);
    if (out.includes('\n')) break;
  }
  const first = out.slice(0, out.indexOf('\n')).trim();
  const record = JSON.parse(first) as { msg?: string; level?: number };
  assert.equal(record.msg, 'starting agent', first);
  assert.equal(record.level, 30);
});
