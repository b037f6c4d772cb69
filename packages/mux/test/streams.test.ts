import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Flag, FrameType, MuxError, type Stream } from '../src/index.ts';
import { closed, hashAll, payload, readAll, sha256, waitFor } from './helpers/io.ts';
import { rawPeer } from './helpers/raw-peer.ts';
import { connect, transportTest } from './helpers/sessions.ts';

const isCode =
  (code: string) =>
  (e: unknown): boolean =>
    e instanceof MuxError && e.code === code;

transportTest('a stream carries bytes both ways and end() half-closes so the peer can still answer', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const s = client.open();
  s.end('hello');
  const inbound = await server.accept();
  assert.equal(inbound.id, s.id);
  assert.equal(s.id % 2, 1, 'client stream ids are odd');
  assert.equal((await readAll(inbound)).toString(), 'hello');
  assert.ok(inbound.writable, 'the peer can still write after our FIN');
  inbound.end('world');
  assert.equal((await readAll(s)).toString(), 'world');
  await waitFor(() => s.destroyed && inbound.destroyed, 5_000, 'both streams closed');
  assert.equal(client.numStreams, 0);
  assert.equal(server.numStreams, 0);
  assert.equal(s.closeError, undefined);
});

transportTest('several MiB arrive intact in both directions (sha256) on concurrent streams', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  server.on('stream', (s: Stream) => s.pipe(s));
  const sizes = [3 * 1024 * 1024, 1_000_003, 65_537];
  await Promise.all(
    sizes.map(async (n, i) => {
      const data = payload(n, i + 1);
      const s = client.open();
      const got = hashAll(s);
      s.end(data);
      assert.deepEqual(await got, { sha256: sha256(data), bytes: n });
    }),
  );
  assert.equal(client.stats.resetsIn + client.stats.resetsOut, 0);
  await waitFor(() => client.stats.bytesOut === server.stats.bytesIn && server.stats.bytesOut === client.stats.bytesIn, 5_000, 'byte counters to agree');
  assert.ok(client.stats.bytesOut > 4 * 1024 * 1024);
  assert.equal(client.stats.framesOut, server.stats.framesIn);
  assert.equal(client.stats.streamsOpened, 3);
  assert.equal(server.stats.streamsAccepted, 3);
});

transportTest('a server-opened stream uses even ids and works like a client-opened one', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const s = server.open();
  assert.equal(s.id % 2, 0);
  s.end('from server');
  const inbound = await client.accept();
  assert.equal((await readAll(inbound)).toString(), 'from server');
});

transportTest('destroy(err) sends RST and the peer stream errors with PT_ERR_MUX_STREAM_RESET', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const s = client.open();
  s.write('x');
  const inbound = await server.accept();
  await once(inbound, 'data');
  const failed = closed(inbound);
  const err = new Promise((resolve) => inbound.once('error', resolve));
  s.destroy(new Error('app gave up'));
  assert.ok(isCode('PT_ERR_MUX_STREAM_RESET')(await err));
  await failed;
  assert.equal(server.numStreams, 0);
  assert.equal(client.numStreams, 0);
  assert.equal(server.stats.resetsIn, 1);
});

transportTest('a reset with no error listener anywhere does not crash; the reason is kept in closeError', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const s = client.open();
  s.write('x');
  const inbound = await server.accept();
  s.destroy(new Error('no one listens'));
  await closed(inbound);
  assert.ok(isCode('PT_ERR_MUX_STREAM_RESET')(inbound.closeError));
  assert.equal(s.closeError?.message, 'no one listens');
});

transportTest('frames with combined flags are honoured: SYN|FIN with data, then ACK and FIN back', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: false });
  peer.send(FrameType.data, Flag.syn | Flag.fin, 1, Buffer.from('one-shot'));
  const s = await peer.session.accept();
  assert.equal((await readAll(s)).toString(), 'one-shot');
  const ack = await peer.waitFrame((f) => f.streamId === 1 && (f.flags & Flag.ack) !== 0);
  assert.equal(ack.type, FrameType.windowUpdate);
  s.end('reply');
  await peer.waitFrame((f) => f.streamId === 1 && (f.flags & Flag.fin) !== 0);
  const data = peer.frames.filter((f) => f.streamId === 1 && f.type === FrameType.data);
  assert.equal(Buffer.concat(data.map((f) => f.payload)).toString(), 'reply');
  assert.equal(peer.session.numStreams, 0, 'both FINs seen: the stream left the map');
});

transportTest(
  '10,000 streams opened and closed one after another leave the map empty and the next one works',
  async (t, kind) => {
    const { client, server } = await connect(t, kind);
    server.on('stream', (s: Stream) => {
      s.resume();
      s.once('end', () => s.end());
    });
    for (let i = 0; i < 10_000; i++) {
      const s = client.open();
      s.end();
      s.resume();
      await once(s, 'end');
    }
    await waitFor(() => client.numStreams === 0 && server.numStreams === 0, 5_000, 'maps empty');
    const last = client.open();
    last.end('10,001st');
    server.removeAllListeners('stream');
    server.on('stream', (s: Stream) => s.pipe(s));
    assert.equal((await readAll(last)).toString(), '10,001st');
    assert.equal(client.stats.streamsOpened, 10_001);
  },
  { timeout: 60_000 },
);
