import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Fifo } from '../src/fifo.ts';

test('the FIFO keeps its order across compactions while pushes and shifts interleave', () => {
  const q = new Fifo<number>();
  const got: number[] = [];
  let next = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 3_000; i++) q.push(next++);
    for (let i = 0; i < 2_500; i++) got.push(q.shift() as number);
  }
  assert.equal(q.length, 50 * 500);
  for (let x = q.shift(); x !== undefined; x = q.shift()) got.push(x);
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
  assert.deepEqual(
    got,
    Array.from({ length: next }, (_, i) => i),
  );
});

// A linear drain takes ~0.1 s; the timeout catches a quadratic one (Array#shift on large arrays).
test('a FIFO of 1,000,000 items drains one by one in linear time', { timeout: 10_000 }, () => {
  const q = new Fifo<Buffer>();
  const b = Buffer.alloc(12);
  for (let i = 0; i < 1_000_000; i++) q.push(b);
  let n = 0;
  while (q.shift() !== undefined) n++;
  assert.equal(n, 1_000_000);
  q.push(b);
  q.clear();
  assert.equal(q.length, 0);
});
