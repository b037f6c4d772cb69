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

test('losing a stable session re-dials at once and resets the streak', () => {
  const b = new Backoff({ intervalMs: 100, maxIntervalMs: 1_000, stableAfterMs: 1_000, random: () => 0.5 });
  b.afterDialFailure();
  b.afterDialFailure();
  assert.equal(b.afterSessionLoss(5_000), 0);
  assert.equal(b.failures, 1);
});

test('a gateway that accepts and drops at once gets exponentially slower re-dials, not a storm', () => {
  const b = new Backoff({ intervalMs: 100, maxIntervalMs: 10_000, stableAfterMs: 1_000, random: () => 0.999999 });
  const delays = Array.from({ length: 5 }, () => b.afterSessionLoss(10));
  assert.deepEqual(delays, [0, 99, 199, 399, 799]);
});
