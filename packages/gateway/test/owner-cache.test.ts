// The fleet's memory of which replica holds another replica's cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OwnerCache } from '../src/fleet/owner-cache.ts';
import type { ClusterOwner } from '../src/fleet/registry.ts';

const owner = (cluster: string, replicaId = 'r-a'): ClusterOwner => ({ cluster, epoch: 1, replicaId, sessionId: 's-1', url: `https://${replicaId}.invalid` });

/** Spins until `ms` have passed on performance.now(): the cache's own clock. */
function pass(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* spin */
  }
}

test('an owner is used while fresh, then asked for again', () => {
  const cache = new OwnerCache(5);
  cache.set(owner('c1'));
  assert.equal(cache.get('c1')?.replicaId, 'r-a');
  assert.equal(cache.get('c2'), undefined);
  pass(6);
  assert.equal(cache.get('c1'), undefined, 'an expired entry is not used');
  assert.equal(cache.size, 0, 'and is dropped when read');
});

test('a claim or a refusal forgets the cluster at once, and a zero period remembers nothing', () => {
  const cache = new OwnerCache(60_000);
  cache.set(owner('c1'));
  cache.set(owner('c2', 'r-b'));
  cache.forget('c1');
  assert.equal(cache.get('c1'), undefined);
  assert.equal(cache.get('c2')?.replicaId, 'r-b');
  const none = new OwnerCache(0);
  none.set(owner('c1'));
  assert.equal(none.get('c1'), undefined);
  assert.equal(none.size, 0);
});

test('expired entries of clusters no longer asked for are swept as the cache grows', () => {
  const cache = new OwnerCache(1);
  for (let i = 0; i < 1_000; i++) cache.set(owner(`old-${i}`));
  pass(2);
  for (let i = 0; i < 100; i++) cache.set(owner(`new-${i}`));
  assert.equal(cache.size, 100, 'the 1,000 expired entries are gone');
  assert.equal(cache.get('new-99')?.cluster, 'new-99');
});
