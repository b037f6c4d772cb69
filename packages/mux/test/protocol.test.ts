import assert from 'node:assert/strict';
import { encodeDataFrame, encodeHeader } from '../src/frame.ts';
import { Flag, FrameType, GoAwayCode, MuxError } from '../src/index.ts';
import { closed } from './helpers/io.ts';
import { rawPeer, type RawPeer } from './helpers/raw-peer.ts';
import { transportTest } from './helpers/sessions.ts';

const KiB = 1024;

const violations: [string, (p: RawPeer) => void][] = [
  ['a bad version', (p) => p.sendBytes(Buffer.from([1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]))],
  ['an unknown frame type', (p) => p.sendBytes(Buffer.from([0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]))],
  ['a window overrun', (p) => p.send(FrameType.data, 0, 1, Buffer.alloc(257 * KiB))],
  [
    'a window overrun across frames',
    (p) => {
      p.send(FrameType.data, 0, 1, Buffer.alloc(200 * KiB));
      p.send(FrameType.data, 0, 1, Buffer.alloc(100 * KiB));
    },
  ],
  ['a duplicate SYN for a live stream', (p) => p.send(FrameType.windowUpdate, Flag.syn, 1, 0)],
  ['a SYN with a wrong-parity stream id', (p) => p.send(FrameType.windowUpdate, Flag.syn, 2, 0)],
  ['a stream frame on stream id 0', (p) => p.send(FrameType.data, 0, 0, Buffer.from('x'))],
];

for (const [what, violate] of violations) {
  transportTest(`${what} sends GoAway(protocol error) and closes the session with PT_ERR_MUX_PROTOCOL`, async (t, kind) => {
    const peer = await rawPeer(t, kind, { client: false });
    peer.send(FrameType.windowUpdate, Flag.syn, 1, 0);
    const s = await peer.session.accept();
    violate(peer);
    const ga = await peer.waitFrame((f) => f.type === FrameType.goAway);
    assert.equal(ga.length, GoAwayCode.protocolError);
    await closed(peer.session);
    assert.ok(peer.session.closeError instanceof MuxError);
    assert.equal((peer.session.closeError as MuxError).code, 'PT_ERR_MUX_PROTOCOL');
    await closed(s);
    assert.equal((s.closeError as MuxError).code, 'PT_ERR_MUX_PROTOCOL');
  });
}

transportTest('frames for a never-opened or already-closed stream id are ignored', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: false });
  peer.sendBytes(
    Buffer.concat([
      encodeDataFrame(0, 99, Buffer.from('stray')),
      encodeHeader(FrameType.windowUpdate, Flag.fin, 97, 1000),
      encodeHeader(FrameType.windowUpdate, Flag.rst, 95, 0),
      encodeHeader(FrameType.ping, Flag.syn, 0, 7),
    ]),
  );
  const pong = await peer.waitFrame((f) => f.type === FrameType.ping);
  assert.equal(pong.flags, Flag.ack);
  assert.equal(pong.length, 7);
  assert.equal(peer.session.isClosed, false);
  assert.equal(peer.session.numStreams, 0);
});

transportTest('a remote GoAway with an error code is reported with that code', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: true });
  const got = new Promise((resolve) => peer.session.once('goaway', resolve));
  peer.send(FrameType.goAway, 0, 0, GoAwayCode.internalError);
  assert.equal(await got, GoAwayCode.internalError);
  assert.throws(() => peer.session.open(), { code: 'PT_ERR_MUX_GOAWAY' });
});

transportTest(
  'an inbound stream that sends nothing is ACKed on its own after ackDelayMs, never before it is accepted, with the window delta',
  async (t, kind) => {
    const peer = await rawPeer(t, kind, { client: false, maxStreamWindowBytes: 1024 * KiB });
    peer.send(FrameType.windowUpdate, Flag.syn, 1, 0);
    peer.send(FrameType.ping, Flag.syn, 0, 5);
    await peer.waitFrame((f) => f.type === FrameType.ping); // our pong: the SYN before it has been processed
    assert.equal(peer.frames.filter((f) => f.streamId === 1).length, 0, 'no ACK while unaccepted');
    const s = await peer.session.accept();
    const ack = await peer.waitFrame((f) => f.streamId === 1);
    assert.deepEqual([ack.type, ack.flags, ack.length], [FrameType.windowUpdate, Flag.ack, 768 * KiB]);
    assert.equal(s.id, 1);
  },
);

transportTest("an accepted stream's ACK rides on its first data frame and its window delta follows as a window update", async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: false, maxStreamWindowBytes: 1024 * KiB, ackDelayMs: 60_000 });
  peer.send(FrameType.windowUpdate, Flag.syn, 1, 0);
  const s = await peer.session.accept();
  s.write('answer');
  const data = await peer.waitFrame((f) => f.streamId === 1 && f.type === FrameType.data);
  assert.equal(data.flags, Flag.ack);
  const ours = peer.frames.filter((f) => f.streamId === 1);
  assert.equal(ours.filter((f) => (f.flags & Flag.ack) !== 0).length, 1, 'one ACK, on the data frame');
  const update = ours.find((f) => f.type === FrameType.windowUpdate);
  assert.deepEqual([update?.flags, update?.length], [0, 768 * KiB]);
});

transportTest('an accepted stream that only closes sends its ACK on the FIN, with the window delta', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: false, maxStreamWindowBytes: 1024 * KiB, ackDelayMs: 60_000 });
  peer.send(FrameType.windowUpdate, Flag.syn, 1, 0);
  const s = await peer.session.accept();
  s.end();
  const fin = await peer.waitFrame((f) => f.streamId === 1);
  assert.deepEqual([fin.type, fin.flags, fin.length], [FrameType.windowUpdate, Flag.fin | Flag.ack, 768 * KiB]);
});

transportTest('with ackDelayMs 0 an accepted stream is ACKed at once, before anything it sends', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: false, ackDelayMs: 0 });
  peer.send(FrameType.windowUpdate, Flag.syn, 1, 0);
  const s = await peer.session.accept();
  s.write('x');
  await peer.waitFrame((f) => f.streamId === 1 && f.type === FrameType.data);
  const ours = peer.frames.filter((f) => f.streamId === 1);
  assert.deepEqual(
    ours.map((f) => [f.type, f.flags]),
    [
      [FrameType.windowUpdate, Flag.ack],
      [FrameType.data, 0],
    ],
  );
});

transportTest('open() sends SYN on a window update advertising a window above 256 KiB', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: true, maxStreamWindowBytes: 512 * KiB });
  const s = peer.session.open();
  const syn = await peer.waitFrame((f) => f.streamId === s.id);
  assert.deepEqual([syn.type, syn.flags, syn.length], [FrameType.windowUpdate, Flag.syn, 256 * KiB]);
});

transportTest('an unanswered ping() rejects with PT_ERR_MUX_KEEPALIVE_TIMEOUT but leaves the session open', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: true, keepAliveTimeoutMs: 50 });
  await assert.rejects(peer.session.ping(), { code: 'PT_ERR_MUX_KEEPALIVE_TIMEOUT' });
  assert.equal(peer.session.isClosed, false);
  const s = peer.session.open();
  assert.equal(s.id, 1);
});

transportTest('small writes of one turn leave in data frames of up to maxFrameBytes, every byte in order', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: false, maxFrameBytes: 64 * KiB });
  peer.send(FrameType.windowUpdate, Flag.syn, 1, 0);
  const s = await peer.session.accept();
  const sent: Buffer[] = [];
  for (let i = 0; i < 200; i++) {
    const piece = Buffer.alloc(1000, i);
    sent.push(piece);
    s.write(piece);
  }
  s.end();
  await peer.waitFrame((f) => f.streamId === 1 && (f.flags & Flag.fin) !== 0);
  const data = peer.frames.filter((f) => f.streamId === 1 && f.type === FrameType.data);
  assert.deepEqual(Buffer.concat(data.map((f) => f.payload)), Buffer.concat(sent));
  assert.ok(
    data.every((f) => f.length === f.payload.length && f.length <= 64 * KiB),
    'each frame within maxFrameBytes',
  );
  // 200,000 bytes need at least 4 frames of 64 KiB; one frame per write would be 200.
  assert.ok(data.length <= 6, `${data.length} data frames for 200 writes`);
});
