import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Flag, FrameType, GoAwayCode, MuxError, type Stream } from '../src/index.ts';
import { closed, readAll, waitFor } from './helpers/io.ts';
import { rawPeer } from './helpers/raw-peer.ts';
import { connect, transportTest } from './helpers/sessions.ts';

const hasCode = (e: unknown, code: string): boolean => e instanceof MuxError && e.code === code;

transportTest('ping() measures a round-trip time and keepalive records rttMs', async (t, kind) => {
  const { client, server } = await connect(t, kind, { keepAliveIntervalMs: 20 });
  const rtt = await server.ping();
  assert.ok(rtt >= 0 && rtt < 5_000);
  assert.equal(server.rttMs, rtt);
  await waitFor(() => client.rttMs !== undefined, 5_000, 'keepalive rtt');
});

transportTest('an unanswered keepalive closes the session and errors open streams with PT_ERR_MUX_KEEPALIVE_TIMEOUT', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: true, keepAliveIntervalMs: 30, keepAliveTimeoutMs: 100 });
  const s = peer.session.open();
  const streamErr = new Promise((resolve) => s.once('error', resolve));
  const started = Date.now();
  await closed(peer.session);
  assert.ok(hasCode(peer.session.closeError, 'PT_ERR_MUX_KEEPALIVE_TIMEOUT'));
  assert.ok(hasCode(await streamErr, 'PT_ERR_MUX_KEEPALIVE_TIMEOUT'));
  assert.ok(Date.now() - started < 2_000, 'closed within a bounded time');
  assert.ok(peer.frames.some((f) => f.type === FrameType.ping && f.flags === Flag.syn));
});

transportTest('a dead transport closes both sessions and errors every open stream with PT_ERR_MUX_TRANSPORT_CLOSED', async (t, kind) => {
  const { client, server, pair } = await connect(t, kind);
  const s = client.open();
  s.write('x');
  const inbound = await server.accept();
  const errs = [s, inbound].map((x) => new Promise((resolve) => x.once('error', resolve)));
  pair.b.destroy(new Error('cable cut'));
  for (const e of await Promise.all(errs)) assert.ok(hasCode(e, 'PT_ERR_MUX_TRANSPORT_CLOSED'));
  await Promise.all([closed(client), closed(server)]);
  assert.ok(client.isClosed && server.isClosed);
  assert.equal((server.closeError as MuxError).code, 'PT_ERR_MUX_TRANSPORT_CLOSED');
  assert.throws(
    () => client.open(),
    (e) => hasCode(e, 'PT_ERR_MUX_SESSION_CLOSED'),
  );
  await assert.rejects(client.accept(), (e) => hasCode(e, 'PT_ERR_MUX_TRANSPORT_CLOSED'));
});

transportTest('destroying a session with open streams and no error listeners crashes nothing', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const s = client.open();
  s.write('x');
  const inbound = await server.accept();
  client.destroy(new Error('shutting down'));
  await Promise.all([closed(s), closed(inbound), closed(server)]);
  assert.equal(s.closeError?.message, 'shutting down');
  assert.ok(hasCode(inbound.closeError, 'PT_ERR_MUX_TRANSPORT_CLOSED'));
  assert.equal(client.closeError?.message, 'shutting down');
});

transportTest('after a remote GoAway open() fails with PT_ERR_MUX_GOAWAY while existing streams continue', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const accepted = new Promise<void>((resolve) =>
    server.on('stream', (s: Stream) => {
      s.pipe(s);
      resolve();
    }),
  );
  const existing = client.open();
  existing.write('before ');
  await accepted; // a SYN arriving after our GoAway would be refused
  const code = once(client, 'goaway');
  server.goAway(GoAwayCode.normal);
  assert.deepEqual(await code, [0]);
  assert.ok(client.remoteGoAway && server.localGoAway);
  assert.throws(
    () => client.open(),
    (e) => hasCode(e, 'PT_ERR_MUX_GOAWAY'),
  );
  existing.end('after');
  assert.equal((await readAll(existing)).toString(), 'before after');
});

transportTest('after a local GoAway a new inbound SYN is refused with RST', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: false });
  peer.session.goAway();
  const ga = await peer.waitFrame((f) => f.type === FrameType.goAway);
  assert.equal(ga.length, GoAwayCode.normal);
  peer.send(FrameType.windowUpdate, Flag.syn, 1, 0);
  const rst = await peer.waitFrame((f) => f.streamId === 1);
  assert.equal(rst.flags & Flag.rst, Flag.rst);
  assert.equal(peer.session.numStreams, 0);
  assert.equal(peer.session.isClosed, false);
});

transportTest('a GoAway that accepts streams in flight still serves a SYN that crossed it, until close() refuses', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: false });
  const accepted = new Promise<Stream>((resolve) => peer.session.once('stream', resolve));
  peer.session.goAway(GoAwayCode.normal, { acceptInFlight: true });
  await peer.waitFrame((f) => f.type === FrameType.goAway);
  peer.send(FrameType.windowUpdate, Flag.syn, 1, 0);
  const stream = await accepted;
  assert.equal(stream.id, 1, 'accepted, not refused');
  stream.write('served');
  const data = await peer.waitFrame((f) => f.streamId === 1);
  assert.equal(data.flags & Flag.rst, 0);
  assert.equal(data.flags & Flag.ack, Flag.ack, 'its ACK rides on its first frame');
  void peer.session.close(5_000);
  peer.send(FrameType.windowUpdate, Flag.syn, 3, 0);
  const rst = await peer.waitFrame((f) => f.streamId === 3);
  assert.equal(rst.flags & Flag.rst, Flag.rst, 'refused once closing');
});

transportTest('close() sends GoAway, waits for open streams to finish, then ends the transport', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const s = client.open();
  s.write('req');
  const inbound = await server.accept();
  let closeDone = false;
  const closing = client.close(10_000).then(() => {
    closeDone = true;
  });
  await once(server, 'goaway');
  assert.equal(closeDone, false, 'close() waits for the open stream');
  const echoed = readAll(s);
  inbound.end('res');
  s.end();
  assert.equal((await echoed).toString(), 'res');
  await closing;
  assert.ok(client.isClosed);
  await closed(server);
  assert.ok(hasCode(server.closeError, 'PT_ERR_MUX_TRANSPORT_CLOSED'));
});

transportTest('close() gives up on streams after its timeout and fails them with PT_ERR_MUX_SESSION_CLOSED', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const s = client.open();
  s.write('x');
  await server.accept();
  await client.close(50);
  assert.ok(hasCode(s.closeError, 'PT_ERR_MUX_SESSION_CLOSED'));
});

transportTest('inbound streams beyond the accept backlog are refused with RST', async (t, kind) => {
  const { client, server } = await connect(t, kind, {}, { acceptBacklog: 2 });
  const streams = [client.open(), client.open(), client.open()];
  const refused = new Promise((resolve) => streams[2]?.once('error', resolve));
  for (const s of streams) s.write('hi');
  assert.ok(hasCode(await refused, 'PT_ERR_MUX_STREAM_RESET'));
  const first = await server.accept();
  assert.equal(first.id, streams[0]?.id);
  const fourth = client.open();
  fourth.end('still fine');
  await server.accept();
  const got = await server.accept();
  assert.equal(got.id, fourth.id);
  assert.equal((await readAll(got)).toString(), 'still fine');
});

transportTest('maxConcurrentStreams bounds open() locally and refuses inbound SYNs beyond it', async (t, kind) => {
  const { client, server } = await connect(t, kind, { maxConcurrentStreams: 3 }, { maxConcurrentStreams: 2 });
  const a = client.open();
  const b = client.open();
  const c = client.open();
  assert.throws(
    () => client.open(),
    (e) => hasCode(e, 'PT_ERR_MUX_STREAMS_EXHAUSTED'),
  );
  const refused = new Promise((resolve) => c.once('error', resolve));
  assert.ok(hasCode(await refused, 'PT_ERR_MUX_STREAM_RESET'));
  assert.deepEqual([(await server.accept()).id, (await server.accept()).id], [a.id, b.id]);
  assert.equal(client.numStreams, 2);
});

transportTest('a SYN never acknowledged fails with PT_ERR_MUX_OPEN_TIMEOUT and sends RST', async (t, kind) => {
  const peer = await rawPeer(t, kind, { client: true, streamOpenTimeoutMs: 100 });
  const s = peer.session.open();
  const err = new Promise((resolve) => s.once('error', resolve));
  assert.ok(hasCode(await err, 'PT_ERR_MUX_OPEN_TIMEOUT'));
  const rst = await peer.waitFrame((f) => f.streamId === s.id && (f.flags & Flag.rst) !== 0);
  assert.equal(rst.type, FrameType.windowUpdate);
  assert.equal(peer.session.numStreams, 0);
});

transportTest('an accepted stream that answered and whose opener never closes is reset after streamCloseTimeoutMs', async (t, kind) => {
  const { client, server } = await connect(t, kind, {}, { streamCloseTimeoutMs: 100 });
  const s = client.open();
  s.write('request');
  const inbound = await server.accept();
  const localErr = new Promise((resolve) => inbound.once('error', resolve));
  const remoteErr = new Promise((resolve) => s.once('error', resolve));
  s.resume();
  inbound.resume();
  inbound.end('answer');
  assert.ok(hasCode(await localErr, 'PT_ERR_MUX_CLOSE_TIMEOUT'));
  assert.ok(hasCode(await remoteErr, 'PT_ERR_MUX_STREAM_RESET'));
  await waitFor(() => server.numStreams === 0 && client.numStreams === 0, 5_000, 'both maps empty');
});

transportTest('a stream we opened and half-closed waits past streamCloseTimeoutMs for an answer that takes longer', async (t, kind) => {
  const { client, server } = await connect(t, kind, { streamCloseTimeoutMs: 100 }, { streamCloseTimeoutMs: 100 });
  // A request that ends at once and whose answer (a WATCH) has not come yet.
  const watch = client.open();
  watch.end('GET /watch');
  const watchServed = await server.accept();
  const request = readAll(watchServed);
  // The clock: an answered stream whose opener stays open is reset by the server after the same timeout,
  // armed after the watch's FIN, so once it fired the watch's deadline (had it one) would have passed too.
  const witness = client.open();
  witness.write('GET /short');
  const witnessServed = await server.accept();
  const witnessReset = new Promise((resolve) => witnessServed.once('error', resolve));
  witness.on('error', () => {});
  witness.resume();
  witnessServed.resume();
  witnessServed.end('answer');
  assert.ok(hasCode(await witnessReset, 'PT_ERR_MUX_CLOSE_TIMEOUT'));
  assert.equal(watch.destroyed, false);
  assert.equal(watch.closeError, undefined);
  assert.equal((await request).toString(), 'GET /watch');
  watchServed.end('event');
  assert.equal((await readAll(watch)).toString(), 'event');
  await closed(watch);
  assert.equal(watch.closeError, undefined);
});

transportTest('expectPeerEnd() gives the peer of a stream we opened streamCloseTimeoutMs to close, then resets', async (t, kind) => {
  const { client, server } = await connect(t, kind, { streamCloseTimeoutMs: 100 });
  const s = client.open();
  const localErr = new Promise((resolve) => s.once('error', resolve));
  s.end('bye');
  const inbound = await server.accept();
  const remoteErr = new Promise((resolve) => inbound.once('error', resolve));
  inbound.resume();
  await once(inbound, 'end');
  s.expectPeerEnd();
  assert.ok(hasCode(await localErr, 'PT_ERR_MUX_CLOSE_TIMEOUT'));
  assert.ok(hasCode(await remoteErr, 'PT_ERR_MUX_STREAM_RESET'));
  assert.equal(client.numStreams, 0);
  await waitFor(() => server.numStreams === 0, 5_000, 'server map empty');
});

transportTest('a listener that throws while a frame is delivered closes the session with PT_ERR_MUX_INTERNAL and GoAway(2)', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const boom = new Error('app bug');
  server.on('stream', () => {
    throw boom;
  });
  const goaway = once(client, 'goaway');
  client.open().write('x');
  assert.deepEqual(await goaway, [GoAwayCode.internalError]);
  await closed(server);
  assert.ok(hasCode(server.closeError, 'PT_ERR_MUX_INTERNAL'));
  assert.equal((server.closeError as MuxError).cause, boom);
});
