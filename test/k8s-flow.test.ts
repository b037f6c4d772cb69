// Flow control and cancellation along the Kubernetes path: a runner that
// stops reading holds the API server back (memory stays bounded), a runner
// that goes away aborts the upstream request, an API server that ends or
// breaks is seen by the runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { waitFor } from '@pipeops/tunnel-testkit';
import { startK8sPath } from './k8s-harness.ts';

const MiB = 1024 * 1024;

test("a 256 MiB response nobody reads stalls the API server's writer and memory stays bounded", async (t) => {
  const p = await startK8sPath(t);
  const rssBefore = process.memoryUsage().rss;
  const res = await request(`${p.base}/blob?bytes=${256 * MiB}&seed=stall`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(res.statusCode, 200);
  await waitFor(() => p.fake.stats.blobBytesSent > MiB, { what: 'the body to start flowing' });
  // Stalled = the fake's writer made no progress for 300 ms (flow control all the way back).
  let last = -1;
  let since = Date.now();
  await waitFor(
    () => {
      const now = p.fake.stats.blobBytesSent;
      if (now !== last) {
        last = now;
        since = Date.now();
        return false;
      }
      return Date.now() - since >= 300;
    },
    { timeoutMs: 20_000, intervalMs: 25, what: "the fake's writer to stall behind the paused runner" },
  );
  const sent = p.fake.stats.blobBytesSent;
  const grown = process.memoryUsage().rss - rssBefore;
  assert.ok(sent < 64 * MiB, `the API server wrote only ${(sent / MiB).toFixed(1)} MiB of 256 before backpressure stopped it`);
  assert.ok(grown < 64 * MiB, `rss grew ${(grown / MiB).toFixed(1)} MiB for a 256 MiB unread response`);
  res.body.destroy();
  await p.fake.aborted.wait((r) => r.path.startsWith('/blob'), 5_000);
});

test('a runner that goes away aborts the upstream request within a second (a hanging request and a watch)', async (t) => {
  const p = await startK8sPath(t);
  const ac = new AbortController();
  const pending = request(`${p.base}/hang`, { dispatcher: p.dispatcher, headers: p.auth, signal: ac.signal });
  await waitFor(() => p.fake.requests.some((r) => r.path === '/hang'), { what: '/hang to reach the fake' });
  const abortedAt = Date.now();
  ac.abort();
  await assert.rejects(pending);
  const hang = await p.fake.aborted.wait((r) => r.path === '/hang', 5_000);
  assert.ok(hang.abortedAt - abortedAt < 1_000, `upstream aborted ${hang.abortedAt - abortedAt} ms after the runner`);

  const watch = await request(`${p.base}/api/v1/namespaces/default/pods?watch=true`, { dispatcher: p.dispatcher, headers: p.auth });
  await p.fake.watch.waitForWatchers();
  const closedAt = Date.now();
  watch.body.destroy();
  const w = await p.fake.aborted.wait((r) => r.path.includes('watch=true'), 5_000);
  assert.ok(w.abortedAt - closedAt < 1_000, `watch aborted upstream ${w.abortedAt - closedAt} ms after the runner left`);
  await waitFor(() => p.fake.watch.active === 0, { what: 'the fake to drop the watch' });
});

test('an API server that breaks mid-body is seen by the runner as an error, never as a clean short body', async (t) => {
  const p = await startK8sPath(t);
  const res = await request(`${p.base}/blob?bytes=${128 * MiB}&seed=broken`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(res.statusCode, 200);
  const it = res.body[Symbol.asyncIterator]();
  await it.next(); // the body is flowing
  await p.fake.close(); // every upstream connection destroyed mid-body
  await assert.rejects(async () => {
    for (;;) if ((await it.next()).done === true) break;
  });
});
