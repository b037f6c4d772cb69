// The launcher sizes V8's young generation per command (see
// bin/launcher.js): the relays (gateway, connect, proxy) get semi-spaces of
// up to 8 MiB, every other command keeps the initial size, and a size the
// user chose is left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { BIN, cleanEnv } from './helpers.ts';

// After the command, allocate objects that survive a few scavenges (what
// makes V8 grow the young generation) and print its size in MiB.
const PROBE = `data:text/javascript,${encodeURIComponent(`
import v8 from 'node:v8';
process.on('exit', () => {
  let keep = [];
  for (let i = 0; i < 400000; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 50000) keep = []; }
  const ns = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  process.stdout.write('NEW_SPACE_MIB=' + (ns.space_size / 1048576) + '\\n');
});`)}`;

async function newSpaceMiB(nodeOptions?: string, args = ['--version']): Promise<number> {
  const env = cleanEnv(nodeOptions === undefined ? {} : { NODE_OPTIONS: nodeOptions });
  const child = spawn(process.execPath, ['--import', PROBE, BIN, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0, out);
  const m = /NEW_SPACE_MIB=([\d.]+)/.exec(out);
  assert.ok(m !== null, out);
  return Number(m[1]);
}

test('the CLI keeps the young generation at its initial size; a size the user chose in NODE_OPTIONS is left alone', async () => {
  const kept = await newSpaceMiB();
  const chosen = await newSpaceMiB('--max-semi-space-size=8');
  assert.ok(kept <= 4, `young generation ${kept} MiB without a choice`);
  assert.ok(chosen > kept, `young generation ${chosen} MiB with --max-semi-space-size=8 (kept: ${kept} MiB)`);
});

test('the relay commands get a young generation of up to 8 MiB semi-spaces; a size the user chose wins', async () => {
  // New space = two semi-spaces: 2 MiB at V8's initial size, 16 MiB at the relays' cap, 32 MiB at V8's own.
  for (const command of ['gateway', 'connect', 'proxy']) {
    const relay = await newSpaceMiB(undefined, [command, '--help']);
    assert.ok(relay > 4 && relay <= 16, `${command}: young generation ${relay} MiB`);
  }
  const chosen = await newSpaceMiB('--max-semi-space-size=1', ['gateway', '--help']);
  // Two 1 MiB semi-spaces; V8 can hold a page or two more for a moment (2.5 MiB seen under load), still far from the relays' > 4.
  assert.ok(chosen <= 3, `gateway with --max-semi-space-size=1: ${chosen} MiB`);
  // Under an inspector the process is not replaced (its first address would be dead): the initial size stays.
  const inspected = await newSpaceMiB('--inspect=127.0.0.1:0', ['gateway', '--help']);
  assert.ok(inspected <= 4, `gateway under --inspect: ${inspected} MiB`);
});
