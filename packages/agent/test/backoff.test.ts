import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../src/backoff.ts';

test('dial failures wait a full-jitter delay under an exponentially growing, capped ceiling', () => {
  const b = new Backoff({ intervalMs: 100, maxIntervalMs: 1_000, stableAfterMs: 10_000, random: () => 0.999999 });
  const delays = Array.from({ length: 7 }, () => b.afterDialFailure());
  assert.deepEqual(delays, [99, 199, 399, 799, 999, 999, 999]);
});

test('the jitter spans the whole range down to zero', () => {
  const b = new Backoff({ intervalMs: 100, maxIntervalMs: 1_000, stableAfterMs: 10_000, random: () => 0 });
  assert.equal(b.afterDialFailure(), 0);
  let seen = 0;
  const r = new Backoff({ intervalMs: 1_000, maxIntervalMs: 1_000, stableAfterMs: 1, random: Math.random });
  for (let i = 0; i < 200; i++) seen = Math.max(seen, r.afterDialFailure());
  assert.ok(seen > 500 && seen < 1_000, `max delay seen ${seen}`);
});

test('losing a stable session re-dials within a second, jittered, and resets the streak', () => {
  const b = new Backoff({ intervalMs: 5_000, maxIntervalMs: 60_000, stableAfterMs: 1_000, random: () => 0.5 });
  b.afterDialFailure();
  b.afterDialFailure();
  assert.equal(b.afterSessionLoss(5_000), 500);
  assert.equal(b.failures, 1);
  // A short interval is the bound when it is under a second.
  assert.equal(new Backoff({ intervalMs: 100, maxIntervalMs: 1_000, stableAfterMs: 1_000, random: () => 0.5 }).afterSessionLoss(5_000), 50);
});

test('agents that lose their sessions together spread their first re-dials over the second', () => {
  const delays = Array.from({ length: 1_000 }, () => new Backoff({ intervalMs: 5_000, maxIntervalMs: 60_000, stableAfterMs: 1_000 }).afterSessionLoss(60_000));
  assert.ok(delays.every((d) => d >= 0 && d < 1_000));
  // Every tenth of the second gets some of them, none more than a fifth.
  const perTenth = Array.from({ length: 10 }, (_, i) => delays.filter((d) => Math.floor(d / 100) === i).length);
  assert.ok(
    perTenth.every((n) => n > 30 && n < 200),
    `per 100 ms: ${perTenth.join(', ')}`,
  );
});

test('a gateway that accepts and drops at once gets exponentially slower re-dials, not a storm', () => {
  const b = new Backoff({ intervalMs: 100, maxIntervalMs: 10_000, stableAfterMs: 1_000, random: () => 0.999999 });
  const delays = Array.from({ length: 5 }, () => b.afterSessionLoss(10));
  assert.deepEqual(delays, [99, 99, 199, 399, 799]);
});
