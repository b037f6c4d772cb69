import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket, type GrantPacer, type Stream } from '../src/index.ts';
import { payload, readAll } from './helpers/io.ts';
import { connect } from './helpers/sessions.ts';
import { transports } from './helpers/transports.ts';

const KiB = 1024;

for (const kind of transports) {
  test(`a paced receiver grants credit only when its pacer allows, and the sender waits for it (${kind.name})`, async (t) => {
    const { client, server } = await connect(t, kind);
    let open = false;
    const granted: number[] = [];
    const pacer: GrantPacer = {
      waitMs: () => (open ? 0 : 20),
      charge: (n) => {
        granted.push(n);
      },
    };
    const received = new Promise<Buffer>((resolve, reject) => {
      server.on('stream', (s: Stream) => {
        readAll(s.setGrantPacer(pacer)).then(resolve, reject);
      });
    });
    const data = payload(1024 * KiB, 7);
    const s = client.open();
    s.end(data);
    // The first window (256 KiB) needs no grant; everything beyond waits for the pacer.
    const deadline = Date.now() + 300;
    while (Date.now() < deadline) await new Promise((r) => setImmediate(r));
    assert.deepEqual(granted, [], 'no credit was granted while the pacer said wait');
    open = true;
    assert.deepEqual(await received, data);
    assert.ok(granted.length > 0);
    assert.ok(granted.reduce((a, b) => a + b, 0) >= data.length - 256 * KiB, 'every byte beyond the first window was granted through the pacer');
  });
}

test('one token bucket shared by two streams paces them together, in debt and out', () => {
  let now = 0;
  const bucket = new TokenBucket(1_000, 1_000, () => now);
  assert.equal(bucket.waitMs(), 0);
  bucket.charge(1_500); // two streams' grants: 500 bytes of debt
  assert.equal(bucket.waitMs(), 500);
  now += 250;
  assert.equal(bucket.waitMs(), 250);
  now += 250;
  assert.equal(bucket.waitMs(), 0);
  assert.equal(bucket.take(), false, 'out of debt is not yet a token');
  now += 1;
  assert.equal(bucket.take(), true);
  assert.equal(bucket.full, false);
  now += 10_000;
  assert.equal(bucket.full, true, 'refills only up to its burst');
});
