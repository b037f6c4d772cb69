import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from '../src/token-bucket.ts';

/** A clock the test moves by hand (ms). */
function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

test('the ping token bucket allows its burst at once, then its rate, and never saves up beyond the burst', () => {
  const clock = manualClock();
  const bucket = new TokenBucket(50, 10, clock.now);
  const takes = (n: number): number => Array.from({ length: n }, () => bucket.take()).filter(Boolean).length;
  assert.equal(takes(100), 10, 'a full bucket gives its burst');
  clock.advance(19);
  assert.equal(bucket.take(), false, 'less than one token refilled');
  clock.advance(1);
  assert.equal(takes(5), 1, '50/s: one token per 20 ms');
  clock.advance(1_000);
  assert.equal(takes(100), 10, 'a second refills 50 tokens, capped at the burst of 10');
  clock.advance(60_000);
  assert.equal(takes(100), 10, 'idle for a minute: still the burst only');
});

test('the ping token bucket adds nothing when its clock goes backwards', () => {
  const clock = manualClock();
  const bucket = new TokenBucket(1_000, 1, clock.now);
  assert.equal(bucket.take(), true);
  clock.advance(-500);
  assert.equal(bucket.take(), false);
  clock.advance(1);
  assert.equal(bucket.take(), true, 'refills from the latest reading, at 1 token/ms');
});
