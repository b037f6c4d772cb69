// What a relay process loads is memory it keeps for its lifetime
// (docs/benchmarks.md, idle agent). The rules that keep the graphs lean: no
// ES import of node:http (its namespace evaluates lazy exports that load
// Node's bundled undici, web streams and http2: ~13 MB); the agent takes
// only the parts of undici it uses, not the package entry (~13 MB more);
// each command's module is loaded when it runs; and the gateway loads
// ioredis (~20 MB) only for a fleet and node-forge only for --dev.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cleanEnv, ROOT } from './helpers.ts';

/** Imports `specifiers` in a fresh Node process (from the CLI package) and says what it loaded. */
async function loaded(specifiers: string[]): Promise<{ builtins: string[]; undiciEntry: boolean; packages: string[] }> {
  const script = `
    import { createRequire } from 'node:module';
    for (const s of ${JSON.stringify(specifiers)}) await import(s);
    const cache = Object.keys(createRequire(import.meta.url).cache);
    console.log(JSON.stringify({
      builtins: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)),
      undiciEntry: cache.some((f) => /[\\\\/]undici[\\\\/]index\\.js$/.test(f)),
      packages: [...new Set(cache.map((f) => /.*node_modules[\\\\/]((?:@[^\\\\/]+[\\\\/])?[^\\\\/]+)/.exec(f)?.[1]).filter(Boolean))],
    }));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: `${ROOT}packages/cli`,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0, out);
  return JSON.parse(out) as { builtins: string[]; undiciEntry: boolean; packages: string[] };
}

// (@pipeops/tunnel-client is not in the list: it hands runners a KubeConfig of
// @kubernetes/client-node, which loads Node's bundled undici itself.)
test("the CLI, the agent, the gateway and the packages under them load without Node's bundled undici", async () => {
  const r = await loaded([
    './src/main.ts',
    './src/commands/connect.ts',
    '@pipeops/tunnel-protocol',
    '@pipeops/tunnel-mux',
    '@pipeops/tunnel-agent',
    '@pipeops/tunnel-gateway',
  ]);
  assert.ok(r.builtins.includes('http'), 'node:http itself is loaded (the check looks at the right list)');
  assert.ok(!r.builtins.includes('internal/deps/undici/undici'), "Node's bundled undici was loaded: an ES import of node:http?");
});

test("the agent loads undici's parts it uses, not undici's package entry", async () => {
  const r = await loaded(['@pipeops/tunnel-agent']);
  assert.equal(r.undiciEntry, false);
});

test('the gateway loads neither the agent, nor ioredis without a fleet, nor node-forge without --dev', async () => {
  const r = await loaded(['./src/main.ts', './src/commands/gateway.ts', '@pipeops/tunnel-gateway']);
  assert.ok(r.packages.includes('ws'), `the check sees the packages loaded: ${r.packages.join(', ')}`);
  assert.ok(!r.packages.includes('undici'), 'undici is loaded: the agent came with another command');
  assert.ok(!r.packages.includes('ioredis'), 'ioredis is loaded');
  assert.ok(!r.packages.includes('node-forge'), 'node-forge is loaded');
});
