// The rounds of `pnpm bench:pair`: their order, which of them count, and
// how the two sides are compared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addRound, emptyPairSamples, formatPairRows, pairRows, pairSchedule } from '../lib/pair-rounds.ts';

test('a paired run warms each rig once uncounted, then measures in ABBA blocks', () => {
  const schedule = pairSchedule(2);
  assert.deepEqual(
    schedule.map((r) => `${r.side}${r.counted ? '' : ' (warm-up)'}`),
    ['base (warm-up)', 'head (warm-up)', 'base', 'head', 'head', 'base', 'base', 'head', 'head', 'base'],
  );
  assert.throws(() => pairSchedule(0), /at least 1/);
  assert.throws(() => pairSchedule(1.5), /whole number/);
});

test('uncounted rounds are dropped, and each side is summarised by its median with head compared round by round', () => {
  const samples = emptyPairSamples();
  const schedule = pairSchedule(2);
  // base then head figures in schedule order: warm-ups far off, then base 100/110/90/120 and head 90/95/100/80.
  const figures = [1000, 1, 100, 90, 95, 110, 90, 100, 80, 120];
  schedule.forEach((round, i) => {
    addRound(samples, round, { 'c1 p50 µs': figures[i]!, 'c64 req/s': round.side === 'head' ? 6000 : 5000 });
  });
  const [latency, rate] = pairRows(samples);
  assert.ok(latency !== undefined && rate !== undefined);
  assert.deepEqual(latency.base.samples, [100, 110, 90, 120]);
  assert.deepEqual(latency.head.samples, [90, 95, 100, 80]);
  assert.equal(latency.base.median, 105);
  assert.equal(latency.head.median, 92.5);
  assert.ok(Math.abs(latency.change - (92.5 / 105 - 1)) < 1e-12);
  // Pairs in round order: 90<100, 95<110, 100>90, 80<120.
  assert.equal(latency.headLower, 3);
  assert.equal(latency.pairs, 4);
  assert.ok(Math.abs(rate.change - 0.2) < 1e-12);
  const table = formatPairRows([latency, rate], 'base', 'head');
  assert.match(table, /c1 p50 µs\s+105\s+92\.5\s+-11\.9 %\s+3 of 4/);
  assert.match(table, /c64 req\/s\s+5000\s+6000\s+\+20\.0 %/);
});
