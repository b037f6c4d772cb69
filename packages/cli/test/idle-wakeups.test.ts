// An idle relay sleeps. prom-client's event-loop monitor, at its default
// 10 ms, woke the process 100 times a second: three quarters of an idle
// agent's CPU (docs/benchmarks.md). The relays sample every
// EVENT_LOOP_SAMPLE_MS instead. Measured on a real gateway process as its
// main thread's voluntary context switches (Linux /proc) while it is idle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanEnv, ROOT, startCli, tempDir } from './helpers.ts';

/** Voluntary context switches of `pid`'s main thread so far. */
function wakeups(pid: number): number {
  const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m !== null, 'no voluntary_ctxt_switches in /proc/PID/status');
  return Number(m[1]);
}

test('an idle gateway wakes up well under 100 times a second', async (t) => {
  const dir = tempDir(t);
  const gateway = startCli(
    t,
    ['gateway', '--dev', '--listen', '127.0.0.1:0', '--tokens', join(ROOT, 'tokens.example.yaml')],
    cleanEnv({ PIPEOPS_GATEWAY_STATE_DIR: dir }),
  );
  await gateway.waitFor((r) => typeof r.msg === 'string' && r.msg.startsWith('gateway listening on https://'), 'listening record');
  const pid = gateway.child.pid;
  assert.ok(pid !== undefined);
  // What is measured is a rate over a fixed window, not a wait for an event.
  const before = wakeups(pid);
  await sleep(2_000);
  const perSecond = (wakeups(pid) - before) / 2;
  assert.ok(perSecond < 40, `an idle gateway woke ${perSecond} times a second`);
});
