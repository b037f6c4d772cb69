import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Gauge, Registry } from 'prom-client';
import { DeferredCounter, StreamAccounting } from '../src/index.ts';

/** The value of one series as a scrape reads it (the metric's collect hook runs first, as for /metrics). */
async function read(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const json = await registry.getMetricsAsJSON();
  const metric = json.find((m) => m.name === name);
  const match = (l: Record<string, unknown>): boolean => Object.entries(labels).every(([k, v]) => l[k] === v);
  return (metric?.values as { value: number; labels: Record<string, unknown> }[] | undefined)?.find((v) => match(v.labels))?.value;
}

test('a deferred counter holds its increments until the metric is read, then every read sees them all', async () => {
  const registry = new Registry();
  let ownCollects = 0;
  const counter = new Counter({
    name: 'requests_total',
    help: 'h',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      ownCollects++;
    },
  });
  const deferred = new DeferredCounter<'code'>(counter);
  for (let i = 0; i < 3; i++) deferred.add('2xx', { code: '2xx' });
  deferred.add('5xx', { code: '5xx' }, 2);
  // A read of the metric alone (its get(), as a scrape calls it) brings them in.
  assert.equal((await counter.get()).values.find((v) => v.labels.code === '2xx')?.value, 3);
  deferred.add('2xx', { code: '2xx' }, 4);
  assert.equal(await read(registry, 'requests_total', { code: '2xx' }), 7);
  assert.equal(await read(registry, 'requests_total', { code: '5xx' }), 2);
  // Read again with nothing new: nothing counted twice.
  assert.equal(await read(registry, 'requests_total', { code: '2xx' }), 7);
  assert.equal(ownCollects, 4, 'the metric’s own collect hook still runs at every read');
});

test('stream accounting reaches its metrics at every read, with opened = finished + active', async () => {
  const registry = new Registry();
  const registers = [registry];
  const active = new Gauge({ name: 'active', help: 'h', labelNames: ['kind'], registers });
  const total = new Counter({ name: 'total', help: 'h', labelNames: ['kind', 'result'], registers });
  const opened = new Counter({ name: 'opened', help: 'h', labelNames: ['kind'], registers });
  const streams = new StreamAccounting<'http' | 'unknown'>({ opened, active, total }, ['http'], ['unknown']);
  for (let i = 0; i < 5; i++) streams.opened('http');
  streams.closed('http', 'ok');
  streams.closed('http', 'reset');
  streams.refused('unknown');
  streams.refused('http');
  assert.equal(await read(registry, 'opened', { kind: 'http' }), 6);
  assert.equal(await read(registry, 'active', { kind: 'http' }), 3);
  assert.equal(await read(registry, 'total', { kind: 'http', result: 'ok' }), 1);
  assert.equal(await read(registry, 'total', { kind: 'http', result: 'reset' }), 1);
  assert.equal(await read(registry, 'total', { kind: 'http', result: 'refused' }), 1);
  assert.equal(await read(registry, 'opened', { kind: 'unknown' }), 1);
  assert.equal(await read(registry, 'total', { kind: 'unknown', result: 'refused' }), 1);
  for (let i = 0; i < 3; i++) streams.closed('http', 'ok');
  assert.equal(await read(registry, 'active', { kind: 'http' }), 0);
  assert.equal(await read(registry, 'total', { kind: 'http', result: 'ok' }), 4);
});
