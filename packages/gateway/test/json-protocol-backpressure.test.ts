import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startJsonRig, waitFor } from './json-protocol-harness.ts';

const MAX_BUFFERED = 64 * 1024;
// Everything the flood can have written while the runner reads nothing: the
// runner socket's kernel buffers (both ends), one mux window, the http
// parsers' buffers and MAX_BUFFERED. Unbounded buffering would blow far past it.
const STALL_BOUND_BYTES = 48 * 1024 * 1024;

test('a runner that stops reading pauses its response stream: gateway buffering stays bounded and the API server is stopped by flow control', async (t) => {
  const rig = await startJsonRig(t, { maxBufferedBytes: MAX_BUFFERED });
  const runner = await rig.connect();
  runner.send({ id: 'flood', method: 'GET', path: '/flood', stream: true });
  await runner.next((m) => m.id === 'flood' && m.status === 200);
  runner.ws.pause();

  // The app writes as fast as the stream lets it; it must end up waiting for 'drain'
  // while the endpoint holds that response paused.
  await waitFor(() => rig.app.flood.blocked && rig.endpoint.stats().paused === 1, 30_000, 'the flood to be stopped by backpressure');
  const stalledAt = rig.app.flood.bytes;
  const stats = rig.endpoint.stats();
  assert.ok(stats.bufferedBytes <= MAX_BUFFERED + 256 * 1024, `gateway socket buffer ${stats.bufferedBytes} B stays near ${MAX_BUFFERED} B`);
  assert.ok(stalledAt < STALL_BOUND_BYTES, `the API server was stopped after ${stalledAt} B`);

  // Reading again resumes the flow end to end, in order.
  runner.ws.resume();
  await waitFor(() => rig.app.flood.bytes > stalledAt + 1024 * 1024, 30_000, 'the flood to continue after the runner reads again');
  const chunks = runner
    .for('flood')
    .filter((m) => 'chunk' in m)
    .map((m) => (m.chunk as { object: { n: number } }).object.n);
  assert.ok(chunks.length > 0);
  for (const [i, n] of chunks.entries()) assert.equal(n, i, 'events arrive in order, none lost');
  runner.send({ id: 'flood', cancel: true });
  await runner.next((m) => m.id === 'flood' && m.cancelled === true, 30_000);
});
