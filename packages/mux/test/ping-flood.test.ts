import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_QUEUED_PONGS } from '../src/session.ts';
import { defaultSessionOptions, Flag, FrameType, HEADER_BYTES, Session, type Stream } from '../src/index.ts';
import { captureOutput, isPong, pingFrames } from './helpers/capture.ts';
import { readAll, waitFor } from './helpers/io.ts';
import { rawPeer } from './helpers/raw-peer.ts';
import { connect, transportTest } from './helpers/sessions.ts';

// Security finding: 240,000 pings (2.9 MB) froze a gateway for 16–20 s (an
// O(n) Array#shift per queued pong) and every ping queued a pong, unbounded.

const FLOOD = 240_000;
const PINGS_PER_CHUNK = 20_000; // 240 KB writes: the peer sends in large chunks

/** Upper bound of pongs a session may answer within `elapsedMs` of its creation with the default bucket. */
function answerBound(elapsedMs: number): number {
  return defaultSessionOptions.pingBurst + Math.ceil((defaultSessionOptions.maxPingsPerSecond * elapsedMs) / 1000);
}

transportTest(
  'a flood of 240,000 pings is processed in bounded time and memory and the session keeps serving streams',
  async (t, kind) => {
    const created = performance.now();
    const peer = await rawPeer(t, kind, { client: false });
    peer.session.on('stream', (s: Stream) => s.pipe(s));
    const started = performance.now();
    for (let i = 0; i < FLOOD; i += PINGS_PER_CHUNK) peer.sendBytes(pingFrames(PINGS_PER_CHUNK, i));
    await waitFor(() => peer.session.stats.framesIn >= FLOOD, 20_000, 'every ping processed');
    const processedAt = performance.now();
    // Every ping is either answered (and the pong reaches the peer) or counted as dropped.
    const pongs = (): number => peer.frames.filter(isPong).length;
    await waitFor(() => pongs() + peer.session.stats.pingsDropped === FLOOD, 20_000, 'pongs out');
    const settledMs = performance.now() - started;
    t.diagnostic(`${FLOOD} pings: ${pongs()} answered, ${peer.session.stats.pingsDropped} dropped, settled in ${Math.round(settledMs)} ms`);
    assert.ok(pongs() >= 1, 'the burst is answered');
    assert.ok(pongs() <= answerBound(processedAt - created), `${pongs()} pongs exceed the rate limit`);
    assert.ok(
      peer.frames.filter(isPong).every((f) => f.length < FLOOD),
      'pongs echo the opaque values sent',
    );
    // Generous: a linear loop settles in well under a second here; the quadratic
    // queue took 35 s on this machine to write its 240,000 pongs.
    assert.ok(settledMs < 10_000, `took ${Math.round(settledMs)} ms`);

    peer.send(FrameType.data, Flag.syn | Flag.fin, 1, Buffer.from('still here?'));
    await peer.waitFrame((f) => f.streamId === 1 && (f.flags & Flag.fin) !== 0);
    // The echo may come back in several data frames: the payload arrived in pieces.
    const echoed = Buffer.concat(peer.frames.filter((f) => f.streamId === 1 && f.type === FrameType.data).map((f) => f.payload));
    assert.equal(echoed.toString(), 'still here?');
    assert.equal(peer.session.isClosed, false);
  },
  { timeout: 60_000 },
);

test('a peer that floods pings and never reads our output gets at most 64 pongs queued; the rest are dropped and counted', async (t) => {
  // The rate limit set out of the way: only the queue bound is left to hold.
  const session = new Session({ client: false, keepAliveIntervalMs: 0, maxPingsPerSecond: 1e9, pingBurst: 1e9 });
  t.after(() => session.destroy());
  for (let i = 0; i < FLOOD; i += PINGS_PER_CHUNK) session.write(pingFrames(PINGS_PER_CHUNK, i));
  assert.equal(session.stats.framesIn, FLOOD, 'input is processed although output is stuck');
  assert.equal(session.stats.pingsDropped, FLOOD - MAX_QUEUED_PONGS);

  const out = captureOutput(session);
  await waitFor(() => out.length >= MAX_QUEUED_PONGS, 5_000, 'queued pongs out');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(out.length, MAX_QUEUED_PONGS);
  assert.ok(out.every(isPong));
  assert.deepEqual(
    out.map((f) => f.length),
    Array.from({ length: MAX_QUEUED_PONGS }, (_, i) => i),
    'the first pings are answered, in order',
  );

  // Once the queue drained, pings are answered again.
  session.write(pingFrames(1, 7_777_777));
  await waitFor(() => out.length === MAX_QUEUED_PONGS + 1, 5_000, 'a fresh pong');
  assert.equal(out.at(-1)?.length, 7_777_777);
});

test('window announcements are never dropped: 10,000 SYNs queued behind unread output all go out despite a ping flood', async (t) => {
  const session = new Session({ client: true, keepAliveIntervalMs: 0 });
  t.after(() => session.destroy());
  const streams = Array.from({ length: 10_000 }, () => session.open());
  session.write(pingFrames(100_000));
  assert.ok(session.stats.pingsDropped >= 100_000 - MAX_QUEUED_PONGS);

  const out = captureOutput(session);
  await waitFor(() => out.length >= 10_000, 5_000, 'the SYNs');
  await new Promise((resolve) => setImmediate(resolve));
  const syns = out.filter((f) => f.type === FrameType.windowUpdate && f.flags === Flag.syn);
  assert.deepEqual(
    syns.map((f) => f.streamId),
    streams.map((s) => s.id),
  );
  const pongs = out.filter(isPong).length;
  assert.equal(pongs + session.stats.pingsDropped, 100_000);
  assert.ok(pongs <= MAX_QUEUED_PONGS);
  assert.equal(session.stats.bytesOut, out.length * HEADER_BYTES);
});

transportTest(
  'after a ping flood, ping() measures the round-trip time again once the bucket refills',
  async (t, kind) => {
    const { client, server, pair } = await connect(t, kind, {}, { keepAliveTimeoutMs: 250 });
    server.on('stream', (s: Stream) => s.pipe(s));
    // Injected into the client's input between the server session's own frames
    // (each write is whole frames); the server ignores pongs it did not ask for.
    for (let i = 0; i < 100_000; i += PINGS_PER_CHUNK) pair.b.write(pingFrames(PINGS_PER_CHUNK, 0x8000_0000 + i));
    await waitFor(() => client.stats.framesIn >= 100_000, 25_000, 'the flood processed');
    assert.ok(client.stats.pingsDropped > 0, 'the flood was rate-limited');

    // A ping sent while the bucket is still empty goes unanswered and rejects
    // after keepAliveTimeoutMs; retry until one is answered (the bucket refills
    // one token per 20 ms by default), within a generous deadline.
    const deadline = Date.now() + 15_000;
    let rtt: number | undefined;
    let attempts = 0;
    while (rtt === undefined) {
      attempts++;
      try {
        rtt = await server.ping();
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }
    t.diagnostic(`answered at attempt ${attempts}`);
    assert.ok(rtt >= 0 && rtt < 5_000);
    assert.equal(server.rttMs, rtt);
    assert.equal((await client.ping()) >= 0, true, 'the flooded side measures its own RTT too');

    const s = client.open();
    s.end('after the flood');
    assert.equal((await readAll(s)).toString(), 'after the flood');
  },
  { timeout: 60_000 },
);
