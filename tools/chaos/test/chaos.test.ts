// The chaos harness tested on itself: a few seeded runs through the real
// processes, one per kind, with the faults that resolve fastest, and a
// check that the harness tells a silent truncation from an error.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { runCampaign } from '../src/campaign.ts';
import { planRun, type RunReport } from '../src/run-one.ts';
import { summarize, summaryText } from '../src/summary.ts';
import { activeSeries, streamsActive } from '../src/probes.ts';
import { prng, runSeed } from '../src/prng.ts';

test('a run replays: the same seed and run number give the same plan', () => {
  assert.deepEqual(planRun(42, 17), planRun(42, 17));
  assert.notDeepEqual(planRun(42, 17), planRun(42, 18));
  const a = prng(runSeed(1, 2));
  const b = prng(runSeed(1, 2));
  assert.deepEqual([a.next(), a.int(0, 9), a.next()], [b.next(), b.int(0, 9), b.next()]);
});

test('stream gauges are summed over their kinds, other series ignored', () => {
  const text = [
    '# HELP pipeops_tunnel_streams_active Data streams open, by kind',
    'pipeops_tunnel_streams_active{kind="http"} 2',
    'pipeops_tunnel_streams_active{kind="upgrade"} 1',
    'pipeops_tunnel_streams_active_total 9',
    'pipeops_tunnel_streams_active{kind="watch"} 0',
    'pipeops_tunnel_runner_streams_active{runner="r"} 5',
  ].join('\n');
  assert.equal(streamsActive(text), 3);
  assert.deepEqual(activeSeries(text), ['{kind="http"} 2', '{kind="upgrade"} 1']);
});

test("a failed campaign's summary tells what failed and why, for a log that keeps only its tail", () => {
  const ok: RunReport = { plan: planRun(3, 1), ending: 'complete', bytes: 1, expectedBytes: 1, ms: 1, failures: [], why: [] };
  const leaked: RunReport = {
    ...ok,
    plan: planRun(3, 2),
    failures: ['leak'],
    why: ['still open 5000 ms after the run: {"gateway":1}'],
    tails: { gateway: '      {"msg":"the last line"}' },
  };
  const text = summaryText(summarize([ok, leaked], 3, 10), [ok, leaked]);
  const tail = text.slice(text.indexOf('FAIL'));
  assert.match(tail, /^FAIL: runs 2\n/);
  assert.ok(tail.includes(`run 2: ${leaked.plan.stream.kind} under ${leaked.plan.fault.class}`), tail);
  assert.ok(tail.includes('still open 5000 ms after the run: {"gateway":1}'), tail);
  assert.ok(tail.includes(`gateway's last log lines:\n      {"msg":"the last line"}`), tail);
  assert.doesNotMatch(summaryText(summarize([ok], 3, 10), [ok]), /FAIL/);
});

test('seeded chaos runs over every kind: no truncation, no hang, recovered, nothing left open', { timeout: 120_000 }, async (t) => {
  // Seed 6 gives both transports (exec over SPDY, port-forward over WebSocket) and both cuts (FIN, RST).
  const schedule = [
    { kind: 'plain', fault: 'kill-gateway' },
    { kind: 'chunked', fault: 'relay-cut' },
    { kind: 'upload', fault: 'kill-apiserver' },
    { kind: 'watch', fault: 'kill-agent' },
    { kind: 'logs', fault: 'none' },
    { kind: 'exec', fault: 'relay-cut' },
    { kind: 'portforward', fault: 'kill-agent' },
  ] as const;
  const { reports, logDir } = await runCampaign({ seed: 6, runs: schedule.length, schedule, heldFreezeShare: 0 });
  t.after(() => rmSync(logDir, { recursive: true, force: true }));
  assert.equal(reports.length, schedule.length);
  for (const r of reports) {
    assert.deepEqual(r.failures, [], `run ${r.plan.run} (${r.plan.stream.kind}, ${r.plan.fault.class}): ${r.why.join('; ')}`);
    assert.ok(r.ending === 'complete' || r.ending === 'error');
    assert.ok(r.recoveryMs !== undefined);
  }
  assert.equal(reports.find((r) => r.plan.fault.class === 'none')?.ending, 'complete');
  assert.deepEqual(new Set(reports.map((r) => r.plan.stream.transport)), new Set(['http', 'spdy', 'websocket']));
  assert.deepEqual(new Set(reports.filter((r) => r.plan.fault.class === 'relay-cut').map((r) => r.plan.fault.cutHow)), new Set(['reset', 'close']));
});
