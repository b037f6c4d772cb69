import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { MIN_PROBED_WAIT_MS, probePort, waitBeforeDial } from '../src/probe.ts';

/** A port that accepts every connection (as a load balancer does) and counts them. */
async function acceptingPort(t: TestContext): Promise<{ port: number; probes: () => number }> {
  let probes = 0;
  const server = createServer((c) => {
    probes++;
    c.destroy();
  });
  t.after(() => server.close());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as { port: number }).port, probes: () => probes };
}

async function freePortThenClosed(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  await once(s, 'close');
  return port;
}

test('a backoff wait ends early when a refusing port starts accepting', async (t) => {
  const port = await freePortThenClosed();
  assert.equal(await probePort('127.0.0.1', port, 500), 'refused');
  const waiting = waitBeforeDial({
    delayMs: 30_000,
    probe: { host: '127.0.0.1', port },
    probeIntervalMs: 50,
    refusing: true,
    signal: new AbortController().signal,
  });
  const server = createServer((c) => c.destroy());
  t.after(() => server.close());
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const started = performance.now();
  assert.equal(await waiting, 'port-open');
  assert.ok(performance.now() - started < 1_000);
});

test('a port that accepts from the first probe never shortens the backoff, and is probed only once in it', async (t) => {
  const { port, probes } = await acceptingPort(t);
  const started = performance.now();
  const outcome = await waitBeforeDial({
    delayMs: 1_300,
    probe: { host: '127.0.0.1', port },
    probeIntervalMs: 50,
    refusing: false,
    signal: new AbortController().signal,
  });
  assert.equal(outcome, 'elapsed');
  assert.ok(performance.now() - started >= 1_290);
  assert.equal(probes(), 1, 'a load balancer in front of the gateways always accepts: one probe says so');
});

test('a wait of at most a second is not probed: the first re-dial after a lost session adds no connection', async (t) => {
  const { port, probes } = await acceptingPort(t);
  const outcome = await waitBeforeDial({
    delayMs: MIN_PROBED_WAIT_MS,
    probe: { host: '127.0.0.1', port },
    probeIntervalMs: 50,
    refusing: true,
    signal: new AbortController().signal,
  });
  assert.equal(outcome, 'elapsed');
  assert.equal(probes(), 0);
});

test('aborting a backoff wait returns at once', async () => {
  const ac = new AbortController();
  const waiting = waitBeforeDial({ delayMs: 30_000, probe: undefined, probeIntervalMs: 250, refusing: false, signal: ac.signal });
  ac.abort();
  assert.equal(await waiting, 'aborted');
});
