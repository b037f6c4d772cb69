import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultRunnerLimits, isLimited, RunnerLimiter, verifyRunnerLimits, type RunnerLimits } from '../src/runner-limits.ts';

const limits = (o: Partial<RunnerLimits>): RunnerLimits => ({ ...defaultRunnerLimits, ...o });

test('a runner at its max_streams is refused with stream_limit until one of its streams ends; other runners are not affected', () => {
  const l = new RunnerLimiter(() => 0);
  const lim = limits({ maxStreams: 2 });
  const a = l.acquire('greedy', lim);
  const b = l.acquire('greedy', lim);
  assert.ok(!isLimited(a) && !isLimited(b));
  const c = l.acquire('greedy', lim);
  assert.ok(isLimited(c));
  assert.equal(c.limited, 'stream_limit');
  assert.equal(c.retryAfterSeconds, 1);
  assert.match(c.message, /max_streams 2/);
  assert.ok(!isLimited(l.acquire('polite', lim)), 'another runner has its own count');
  a.release();
  a.release(); // idempotent
  assert.equal(l.open('greedy'), 1);
  assert.ok(!isLimited(l.acquire('greedy', lim)));
});

test('requests_per_second is a token bucket: a burst, then the sustained rate, with Retry-After in whole seconds', () => {
  let now = 0;
  const l = new RunnerLimiter(() => now);
  const lim = limits({ requestsPerSecond: 2, burst: 3, maxStreams: 0 });
  for (let i = 0; i < 3; i++) {
    const s = l.acquire('r', lim);
    assert.ok(!isLimited(s), `request ${i} of the burst`);
    s.release();
  }
  const over = l.acquire('r', lim);
  assert.ok(isLimited(over));
  assert.equal(over.limited, 'rate_limit');
  assert.equal(over.retryAfterSeconds, 1);
  now += 500; // half a second refills one token at 2/s
  const next = l.acquire('r', lim);
  assert.ok(!isLimited(next));
  assert.ok(isLimited(l.acquire('r', lim)));
});

test('the limiter forgets runners with nothing open and a full bucket, so its map holds only active runners', () => {
  const l = new RunnerLimiter(() => 0);
  for (let i = 0; i < 1_000; i++) {
    const s = l.acquire(`runner-${i}`, limits({ maxStreams: 10 }));
    assert.ok(!isLimited(s));
    s.release();
  }
  assert.equal(l.size, 0);
});

test('limits from a tokens file are checked key by key, and 0 means unlimited', () => {
  assert.deepEqual(verifyRunnerLimits({ max_streams: 5, requests_per_second: 0.5 }, 'runners[0].limits'), { maxStreams: 5, requestsPerSecond: 0.5 });
  assert.deepEqual(verifyRunnerLimits(undefined, 'x'), {});
  assert.throws(() => verifyRunnerLimits({ max_streams: -1 }, 'runners[0].limits'), /runners\[0\]\.limits\.max_streams: must be a number >= 0/);
  assert.throws(() => verifyRunnerLimits({ max_stream: 1 }, 'runners[0].limits'), /unknown key "max_stream"/);
  assert.throws(() => verifyRunnerLimits({ burst: 1.5 }, 'r'), /an integer/);
  const unlimited = new RunnerLimiter(() => 0);
  for (let i = 0; i < 5_000; i++) assert.ok(!isLimited(unlimited.acquire('r', limits({ maxStreams: 0 }))));
});
