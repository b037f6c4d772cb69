// An idle relay gives its unused memory back (src/idle-trim.ts): once per
// quiet period, never while work is in progress, with V8's memory-reducing
// collection, and `connect` runs it as `agent.idle_trim_after` says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { freePort } from '@pipeops/tunnel-testkit';
import { trimWhenIdle } from '../src/idle-trim.ts';
import { cleanEnv, startCli } from './helpers.ts';

/** A trimmer driven by hand: a settable clock (the test double for time), a work counter and a busy flag. */
function drivenTrim(quietMs: number) {
  const state = { now: 0, accepted: 0, busy: false, collections: 0 };
  const trim = trimWhenIdle({
    quietMs,
    activity: () => state.accepted,
    busy: () => state.busy,
    logger: pino({ level: 'silent' }),
    collect: () => {
      state.collections++;
    },
    now: () => state.now,
  });
  return { state, trim };
}

test('memory is trimmed once after a quiet period, not while a stream is open, and again after the next burst', (t) => {
  const { state, trim } = drivenTrim(1_000);
  t.after(() => trim.stop());
  /** The collections so far, after a check at time `ms`. */
  const at = (ms: number): number => {
    state.now = ms;
    trim.check();
    return state.collections;
  };
  assert.equal(at(999), 0, 'start-up counts as work: nothing before one quiet period');
  assert.equal(at(1_000), 1, 'trimmed after the first quiet period');
  assert.equal(at(5_000), 1, 'once per quiet period, however long it lasts');

  state.accepted = 1;
  state.busy = true;
  at(6_000);
  assert.equal(at(60_000), 1, 'a stream being served is work, however long it stays open');
  state.busy = false;
  assert.equal(at(60_500), 1, 'the quiet period starts when the work ends');
  assert.equal(at(61_000), 2, 'trimmed again one quiet period after the burst');
});

test("V8's memory-reducing collection shrinks a grown young generation, and the process gets no global gc", async () => {
  const module = fileURLToPath(new URL('../src/idle-trim.ts', import.meta.url));
  const script = `
    import v8 from 'node:v8';
    import { memoryReducingCollection } from ${JSON.stringify(module)};
    const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576;
    let keep = [];
    for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 20000) keep = []; }
    keep = null;
    const grown = newSpace();
    memoryReducingCollection()();
    console.log(JSON.stringify({ grown, trimmed: newSpace(), globalGc: typeof globalThis.gc }));`;
  const child = spawn(process.execPath, ['--max-semi-space-size=8', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0, out);
  const r = JSON.parse(out) as { grown: number; trimmed: number; globalGc: string };
  assert.ok(r.grown > 4, `the young generation grew to ${r.grown} MiB`);
  assert.ok(r.trimmed <= 2, `the young generation is ${r.trimmed} MiB after the collection`);
  assert.equal(r.globalGc, 'undefined');
});

test('a running agent with no streams trims its memory after agent.idle_trim_after', async (t) => {
  // A gateway address nobody listens on: the agent keeps dialing and serves no stream, which is idle.
  const port = await freePort();
  const cli = startCli(
    t,
    ['connect', '--port', '0', '--cluster-name', 'c1', '--pipeops-url', `http://127.0.0.1:${port}`, '--debug'],
    cleanEnv({
      PIPEOPS_PIPEOPS_TOKEN: 'tkn-idle-trim-5e1a',
      PIPEOPS_PIPEOPS_ALLOW_INSECURE: 'true',
      PIPEOPS_AGENT_LISTEN_HOST: '127.0.0.1',
      PIPEOPS_PIPEOPS_RECONNECT_MAX_ATTEMPTS: '0',
      PIPEOPS_AGENT_IDLE_TRIM_AFTER: '200ms',
    }),
  );
  const rec = await cli.waitFor((r) => r.event === 'memory_trimmed', 'memory_trimmed record');
  assert.equal(typeof rec.rssBeforeMb, 'number');
  assert.equal(typeof rec.rssAfterMb, 'number');
  assert.equal(typeof rec.ms, 'number');
  cli.child.kill('SIGINT');
  assert.equal(await cli.exited, 0);
});
