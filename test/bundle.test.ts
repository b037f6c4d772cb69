// The command as the packages ship it: the bundle of tools/bundle.ts runs,
// and an agent started from it loads no code of the gateway, the runner-side
// library or the packages only they use (the bundle is split by command).
// The installed bundle running a gateway and an agent end to end is
// packages/cli/test/pack-install.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Metafile } from 'esbuild';
import { bundleCli } from '../tools/bundle.ts';

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

test("the bundled command runs and an agent started from it loads none of the gateway, the runner library, node-forge, ioredis or undici's package entry", async (t) => {
  // One level below a copy of the package's manifest, as in the package: the CLI reads its version from ../package.json.
  const pkg = mkdtempSync(join(tmpdir(), 'pt-bundle-'));
  t.after(() => rmSync(pkg, { recursive: true, force: true }));
  copyFileSync(join(ROOT, 'packages', 'cli', 'package.json'), join(pkg, 'package.json'));
  mkdirSync(join(pkg, 'dist'));
  const { main, metafile } = await bundleCli(join(pkg, 'dist'));

  const version = (JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }).version;
  const printed = execFileSync(
    process.execPath,
    ['--input-type=module', '-e', `const { main } = await import(${JSON.stringify(pathToFileURL(main).href)}); process.exitCode = await main(['--version']);`],
    { encoding: 'utf8' },
  );
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
