import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Flag, FrameType, Session, type Stream } from '../src/index.ts';
import { captureOutput } from './helpers/capture.ts';
import { payload, readAll, waitFor } from './helpers/io.ts';
import { connect } from './helpers/sessions.ts';
import { transports } from './helpers/transports.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const memory = transports.find((k) => k.name === 'in-memory pair');
if (memory === undefined) throw new Error('the in-memory transport is missing');

test('a group with one stream gets every other frame while another group has 50 streams of 1 MiB queued', { timeout: 60_000 }, async (t) => {
  const FRAME = 16 * KiB;
  const { client, server, pair } = await connect(t, memory, { maxFrameBytes: FRAME });
  // What the server's end of the transport receives: the client's frames, in the order they left.
  const out = captureOutput(pair.b);
  const bDone = new Promise<Buffer>((resolve, reject) => {
    server.on('stream', (s: Stream) => {
      if (s.id === b.id) readAll(s).then(resolve, reject);
      else s.resume();
    });
  });

  const bulk = payload(MiB, 3);
  const a = Array.from({ length: 50 }, () => client.open().setGroup('tenant-a'));
  for (const s of a) s.write(bulk);
  const b = client.open().setGroup('tenant-b');
  const small = payload(64 * KiB, 4);
  b.end(small);
  assert.deepEqual(await bDone, small);

  // Frames of A that left after B was opened (its SYN) and before B's last data frame.
  const synAt = out.findIndex((f) => f.streamId === b.id && (f.flags & Flag.syn) !== 0);
  const bData = out.flatMap((f, i) => (f.streamId === b.id && f.type === FrameType.data ? [i] : []));
  const lastB = bData.at(-1) as number;
  const aIds = new Set(a.map((s) => s.id));
  const aBetween = out.slice(synAt, lastB).filter((f) => f.type === FrameType.data && aIds.has(f.streamId)).length;
  assert.equal(bData.length, small.length / FRAME);
  t.diagnostic(`${aBetween} frames of group A interleaved with B's ${bData.length}`);
  assert.ok(synAt >= 0);
  assert.ok(aBetween <= 2 * bData.length, `${aBetween} frames of A went before B finished (plain round-robin: ~${50 * bData.length})`);
});

/** A bare session whose output nobody reads yet: everything queued before the first frame leaves. */
function bareSession(t: TestContext): Session {
  const session = new Session({ client: true, keepAliveIntervalMs: 0, maxFrameBytes: KiB });
  t.after(() => session.destroy());
  return session;
}

/** Opens one stream per entry, in order, in that group, with `frames` frames of 1 KiB queued; then returns the order of data frames. */
async function dataOrder(t: TestContext, plan: { group?: string; frames: number }[]): Promise<{ ids: number[]; order: number[] }> {
  const session = bareSession(t);
  const streams = plan.map(({ group, frames }) => {
    const s = session.open();
    if (group !== undefined) s.setGroup(group);
    s.write(Buffer.alloc(frames * KiB));
    return s;
  });
  const out = captureOutput(session);
  const total = plan.reduce((n, p) => n + p.frames, 0);
  const data = (): number[] => out.filter((f) => f.type === FrameType.data).map((f) => f.streamId);
  await waitFor(() => data().length >= total, 5_000, 'every data frame');
  return { ids: streams.map((s) => s.id), order: data() };
}

test('with no groups set, data frames leave in plain round-robin order, as before', async (t) => {
  const {
    ids: [s1, s2, s3],
    order,
  } = await dataOrder(t, [{ frames: 3 }, { frames: 1 }, { frames: 2 }]);
  assert.deepEqual(order, [s1, s2, s3, s1, s3, s1]);
  const same = await dataOrder(t, [
    { group: 'x', frames: 3 },
    { group: 'x', frames: 1 },
    { group: 'x', frames: 2 },
  ]);
  assert.deepEqual(
    same.order.map((id) => same.ids.indexOf(id)),
    [0, 1, 2, 0, 2, 0],
    'one named group: the same order',
  );
});

test('groups take turns, then the streams within a group, and ungrouped streams form one group', async (t) => {
  const {
    ids: [a1, a2, b1, u1],
    order,
  } = await dataOrder(t, [{ group: 'A', frames: 3 }, { group: 'A', frames: 2 }, { group: 'B', frames: 2 }, { frames: 1 }]);
  assert.deepEqual(order, [a1, b1, u1, a2, b1, a1, a2, a1]);
});

test('a stream moved to another group while queued takes its turns in the new group from its next turn', async (t) => {
  const session = bareSession(t);
  const [x1, x2, y1] = [session.open().setGroup('X'), session.open().setGroup('X'), session.open().setGroup('Y')] as [Stream, Stream, Stream];
  for (const s of [x1, x2, y1]) s.write(Buffer.alloc(3 * KiB));
  x2.setGroup('Y');
  const out = captureOutput(session);
  const data = (): number[] => out.filter((f) => f.type === FrameType.data).map((f) => f.streamId);
  await waitFor(() => data().length >= 9, 5_000, 'every data frame');
  // Turns: X:x1, Y:y1, X:x2 (queued in X; then requeued in Y, behind y1), Y:y1, X:x1, Y:x2, X:x1, Y:y1, Y:x2.
  assert.deepEqual(data(), [x1.id, y1.id, x2.id, y1.id, x1.id, x2.id, x1.id, y1.id, x2.id]);
  assert.equal(session.scheduledGroupCount, 0);
});

test('a scheduling group whose streams all finished leaves the rotation: 10,000 streams in distinct groups leave no group behind', {
  timeout: 60_000,
}, async (t) => {
  const { client, server } = await connect(t, memory);
  server.on('stream', (s: Stream) => {
    s.resume();
    s.once('end', () => s.end());
  });
  const done = Array.from({ length: 10_000 }, (_, i) => {
    const s = client.open().setGroup(`tenant-${i}`);
    s.end(`request ${i}`);
    s.resume();
    return new Promise<void>((resolve) => s.once('close', () => resolve()));
  });
  const peak = client.scheduledGroupCount;
  t.diagnostic(`${peak} groups queued right after the loop`);
  assert.ok(peak > 1, 'the groups were in the rotation');
  await Promise.all(done);
  await waitFor(() => client.numStreams === 0 && server.numStreams === 0, 5_000, 'maps empty');
  assert.equal(client.scheduledGroupCount, 0);
  assert.equal(client.stats.resetsIn + client.stats.resetsOut, 0);
});
