// The pieces a resume relies on, on their own: the JSON watch-event framing
// (over every re-chunking of the bytes, like the mux tests' transports), the
// resourceVersion of plain and Table events (shapes as kube-apiserver 1.33
// sends them to `kubectl get -w`), when a watch may be resumed, the resumed
// request's query, and the `logs -f` timestamp bookkeeping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonEventSplitter } from '../src/resume/json-event-splitter.ts';
import { LogTracker, lineTimestamp, sinceTimeOf } from '../src/resume/log-tracker.ts';
import { logsResumePath, planResume, watchResumePath } from '../src/resume/resume-plan.ts';
import { eventResourceVersion, WatchTracker } from '../src/resume/watch-tracker.ts';

/** `bytes` cut every `size` bytes. */
function rechunk(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

const CHUNK_SIZES = [1, 5, 13, 4096];

// A Table watch event and a Table BOOKMARK as kube-apiserver 1.33 sends them (descriptions shortened).
const TABLE_ADDED = {
  type: 'ADDED',
  object: {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion: '206' },
    columnDefinitions: [{ name: 'Name', type: 'string', format: 'name', description: 'Name must be unique', priority: 0 }],
    rows: [
      {
        cells: ['b', 0, '0s'],
        object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'b', namespace: 'default', resourceVersion: '206' } },
      },
    ],
  },
};
const TABLE_BOOKMARK = {
  type: 'BOOKMARK',
  object: {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion: '230' },
    columnDefinitions: null,
    rows: [
      {
        cells: ['', 0, '<unknown>'],
        object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: '230', creationTimestamp: null } },
      },
    ],
  },
};

test('the splitter cuts whole objects (strings with braces, escapes, pretty-printed ones) however the bytes are chunked', () => {
  const events = [
    `${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', annotations: { x: 'a } { ] [ "quoted" \\ end' } } } })}\n`,
    `${JSON.stringify({ type: 'MODIFIED', object: { metadata: { name: 'ü-ñ-✓' } } }, null, 2)}\n`,
    `${JSON.stringify(TABLE_ADDED)}\n`,
  ];
  const all = Buffer.from(events.join(''));
  for (const size of CHUNK_SIZES) {
    const splitter = new JsonEventSplitter(1 << 20);
    const objects: string[] = [];
    const whole: Buffer[] = [];
    for (const chunk of rechunk(all, size)) {
      for (const piece of splitter.push(chunk)) {
        whole.push(piece.bytes);
        if (piece.kind === 'object') objects.push(piece.bytes.toString('utf8'));
        assert.notEqual(piece.kind, 'other', `size ${size}`);
      }
    }
    assert.equal(Buffer.concat(whole).toString('utf8'), all.toString('utf8'), `size ${size}: every byte handed out once, in order`);
    assert.equal(objects.length, 3, `size ${size}`);
    for (const o of objects) JSON.parse(o);
  }
});

test('a stream that is not JSON objects is handed on as it is, and the watch is then not resumable', () => {
  const tracker = new WatchTracker({ callerBookmarks: false, explicitStart: true, initialEvents: false });
  const out = tracker.push(Buffer.from('not json at all\n'));
  assert.equal(Buffer.concat(out).toString(), 'not json at all\n');
  assert.match(String(tracker.notResumable()), /not a sequence of JSON/);
});

test('resourceVersion of a plain event, a Table event and a Table bookmark', () => {
  assert.equal(eventResourceVersion({ type: 'ADDED', object: { metadata: { resourceVersion: '7' } } }), '7');
  assert.equal(eventResourceVersion(TABLE_ADDED), '206');
  assert.equal(eventResourceVersion(TABLE_BOOKMARK), '230');
  const withoutOwn = { type: 'ADDED', object: { ...TABLE_ADDED.object, metadata: {} } };
  assert.equal(eventResourceVersion(withoutOwn), '206', 'the last row’s object when the Table has none');
});

test('a Table watch: bookmarks the caller did not ask for are left out (with their newline) but move the resume point', () => {
  for (const size of CHUNK_SIZES) {
    const tracker = new WatchTracker({ callerBookmarks: false, explicitStart: true, initialEvents: false });
    const bytes = Buffer.from(`${JSON.stringify(TABLE_ADDED)}\n${JSON.stringify(TABLE_BOOKMARK)}\n`);
    const out = rechunk(bytes, size).flatMap((c) => tracker.push(c));
    assert.equal(Buffer.concat(out).toString(), `${JSON.stringify(TABLE_ADDED)}\n`, `size ${size}`);
    assert.equal(tracker.resourceVersion, '230');
    assert.equal(tracker.notResumable(), undefined);
  }
});

test('after a resume, a repeat of the last event is dropped; a cut mid-event drops the partial event', () => {
  const tracker = new WatchTracker({ callerBookmarks: true, explicitStart: true, initialEvents: false });
  const ev = (name: string, rv: string) => `${JSON.stringify({ type: 'ADDED', object: { metadata: { name, resourceVersion: rv } } })}\n`;
  assert.equal(Buffer.concat(tracker.push(Buffer.from(ev('a', '10')))).toString(), ev('a', '10'));
  assert.deepEqual(tracker.push(Buffer.from(ev('b', '11').slice(0, 12))), []);
  tracker.cut();
  tracker.resumed();
  const out = tracker.push(Buffer.from(ev('a', '10') + ev('b', '11')));
  assert.equal(Buffer.concat(out).toString(), ev('b', '11'));
  assert.equal(tracker.resourceVersion, '11');
});

test('a watch without a resourceVersion is resumable only once past its initial ADDED events', () => {
  const fromNow = new WatchTracker({ callerBookmarks: false, explicitStart: false, initialEvents: false });
  assert.equal(fromNow.notResumable(), undefined, 'nothing delivered: the same request again is the same watch');
  fromNow.push(Buffer.from(`${JSON.stringify({ type: 'ADDED', object: { metadata: { resourceVersion: '50' } } })}\n`));
  assert.match(String(fromNow.notResumable()), /initial events/);
  fromNow.push(Buffer.from(`${JSON.stringify({ type: 'MODIFIED', object: { metadata: { resourceVersion: '90' } } })}\n`));
  assert.equal(fromNow.notResumable(), undefined);

  const initial = new WatchTracker({ callerBookmarks: true, explicitStart: false, initialEvents: true });
  initial.push(Buffer.from(`${JSON.stringify({ type: 'ADDED', object: { metadata: { resourceVersion: '50' } } })}\n`));
  initial.push(Buffer.from(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '60' } } })}\n`));
  assert.match(String(initial.notResumable()), /initial events/, 'a bookmark without the end marker');
  const end = { type: 'BOOKMARK', object: { metadata: { resourceVersion: '99', annotations: { 'k8s.io/initial-events-end': 'true' } } } };
  initial.push(Buffer.from(`${JSON.stringify(end)}\n`));
  assert.equal(initial.notResumable(), undefined);
  assert.equal(initial.resourceVersion, '99');

  const ended = new WatchTracker({ callerBookmarks: false, explicitStart: true, initialEvents: false });
  ended.push(Buffer.from(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410 } })}\n`));
  assert.match(String(ended.notResumable()), /ERROR/);
});

test('which requests are resumable, and the resumed requests’ query', () => {
  assert.equal(planResume('POST', '/api/v1/namespaces/d/pods?watch=true', undefined), undefined);
  assert.equal(planResume('GET', '/api/v1/namespaces/d/pods', undefined), undefined);
  assert.equal(planResume('GET', '/api/v1/namespaces/d/pods?watch=true', 'application/vnd.kubernetes.protobuf;stream=watch'), undefined, 'protobuf');
  assert.equal(planResume('GET', '/api/v1/namespaces/d/pods/p/log?follow=true', undefined), undefined, 'logs without timestamps');
  assert.equal(planResume('GET', '/api/v1/namespaces/d/pods/p/log?follow=true&timestamps=true&limitBytes=10', undefined), undefined);
  const legacy = planResume('GET', '/api/v1/watch/namespaces/d/pods', undefined);
  assert.equal(legacy?.kind, 'watch');

  const table = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';
  const plan = planResume('GET', '/api/v1/namespaces/d/configmaps?resourceVersion=204&watch=true&timeoutSeconds=60', table);
  assert.ok(plan);
  assert.equal(plan.callerBookmarks, false);
  assert.equal(new URL(plan.path, 'http://x').searchParams.get('allowWatchBookmarks'), 'true', 'bookmarks asked for on the first request too');
  const resumed = new URL(watchResumePath(plan, '230', 20_500) ?? '', 'http://x').searchParams;
  assert.equal(resumed.get('resourceVersion'), '230');
  assert.equal(resumed.get('timeoutSeconds'), '40', 'what is left of the timeout');
  assert.equal(watchResumePath(plan, '230', 61_000), undefined, 'the timeout is over');

  const initial = planResume('GET', '/api/v1/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true', undefined);
  assert.ok(initial?.initialEvents && initial.callerBookmarks);
  const q = new URL(watchResumePath(initial, '99', 0) ?? '', 'http://x').searchParams;
  assert.deepEqual([q.get('sendInitialEvents'), q.get('resourceVersionMatch'), q.get('resourceVersion')], [null, null, '99']);

  const logs = planResume('GET', '/api/v1/namespaces/d/pods/p/log?follow=true&timestamps=true&tailLines=5&container=c', undefined);
  assert.equal(logs?.kind, 'logs');
  const lq = new URL(logsResumePath(logs!, '2030-01-01T00:00:05Z'), 'http://x').searchParams;
  assert.deepEqual([lq.get('sinceTime'), lq.get('tailLines'), lq.get('container')], ['2030-01-01T00:00:05Z', null, 'c']);
});

test('log timestamps: any number of fraction digits, offsets; sinceTime is whole seconds', () => {
  const ns = (s: string) => lineTimestamp(Buffer.from(`${s} x\n`));
  assert.equal(ns('2030-01-01T00:00:05.2Z'), ns('2030-01-01T00:00:05.200000000Z'));
  assert.ok((ns('2030-01-01T00:00:05.000000001Z') ?? 0n) > (ns('2030-01-01T00:00:05Z') ?? 0n));
  assert.equal(ns('2030-01-01T01:00:05+01:00'), ns('2030-01-01T00:00:05Z'));
  assert.equal(ns('no timestamp here'), undefined);
  assert.equal(sinceTimeOf(ns('2030-01-01T00:00:05.999999999Z') ?? 0n), '2030-01-01T00:00:05Z');
});

test('a resumed follow drops the lines it repeats, same-timestamp lines matched in order', () => {
  const t = new LogTracker();
  const line = (ts: string, s: string) => Buffer.from(`${ts} ${s}\n`);
  const first = [line('2030-01-01T00:00:05.1Z', 'a'), line('2030-01-01T00:00:05.2Z', 'b'), line('2030-01-01T00:00:05.2Z', 'b')];
  const passed = first.flatMap((l) => t.push(l));
  assert.equal(passed.length, 3, 'repeated lines are not duplicates the first time');
  t.push(Buffer.from('2030-01-01T00:00:05.3Z cut mid-li'));
  t.cut();
  assert.equal(t.sinceTime(), '2030-01-01T00:00:05Z');
  t.resumed();
  const replay = Buffer.concat([
    ...first,
    line('2030-01-01T00:00:05.2Z', 'c'),
    line('2030-01-01T00:00:05.3Z', 'cut mid-line'),
    line('2030-01-01T00:00:06Z', 'd'),
  ]);
  for (const size of [1, 7]) {
    const t2 = new LogTracker();
    for (const l of first) t2.push(l);
    t2.cut();
    t2.resumed();
    const out = rechunk(replay, size).flatMap((c) => t2.push(c));
    assert.deepEqual(
      out.map((b) => b.toString()),
      ['2030-01-01T00:00:05.2Z c\n', '2030-01-01T00:00:05.3Z cut mid-line\n', '2030-01-01T00:00:06Z d\n'],
      `size ${size}`,
    );
  }
  const plain = new LogTracker();
  plain.push(Buffer.from('no timestamp\n'));
  assert.match(String(plain.notResumable()), /without a timestamp/);
});
