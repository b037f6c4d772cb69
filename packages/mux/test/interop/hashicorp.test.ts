// Interop with the reference implementation: our mux against hashicorp/yamux
// (the Go peer in ./go, built once), over real TCP on 127.0.0.1, with Go in
// both roles. A missing Go toolchain fails these tests; it never skips them.
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import type { Duplex } from 'node:stream';
import { createSession } from '../../src/index.ts';
import type { Session, SessionOptions, Stream } from '../../src/index.ts';
import { buildPeer, startPeer } from './go-peer.ts';
import type { BuiltPeer, RunningPeer } from './go-peer.ts';

const MiB = 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
/** The spec's initial stream window, our default maxStreamWindowBytes. */
const WINDOW_BYTES = 256 * 1024;

let built: BuiltPeer | undefined;
before(
  async () => {
    built = await buildPeer();
  },
  { timeout: 300_000 },
);
after(async () => {
  await built?.remove();
});

type GoRole = 'server' | 'client';

interface Connected {
  session: Session;
  peer: RunningPeer;
  socket: net.Socket;
}

/**
 * Starts the Go peer in `goRole` with `scenario` (flags first, then the
 * scenario's positional args) and returns our session on the other end.
 * Everything is torn down in t.after().
 */
async function connect(
  t: TestContext,
  goRole: GoRole,
  scenario: string,
  { args = [], flags = [], options = {} }: { args?: string[]; flags?: string[]; options?: Partial<SessionOptions> } = {},
): Promise<Connected> {
  if (!built) throw new Error('yamux peer was not built');
  const peerArgs = (addr: string[]): string[] => ['-role', goRole, ...addr, ...flags, '-scenario', scenario, ...args];
  let socket: net.Socket;
  let peer: RunningPeer;
  if (goRole === 'server') {
    peer = startPeer(built.binary, peerArgs([]));
    t.after(() => peer.kill());
    const [, addr] = (await peer.line('LISTEN ')).split(' ');
    const [host, port] = addr!.split(':');
    socket = net.connect({ host: host!, port: Number(port) });
    await once(socket, 'connect');
  } else {
    const server = net.createServer();
    t.after(() => {
      server.close();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    peer = startPeer(built.binary, peerArgs(['-addr', `127.0.0.1:${(server.address() as AddressInfo).port}`]));
    t.after(() => peer.kill());
    [socket] = await Promise.race([
      accepted,
      peer.exited.then((e) => {
        throw new Error(`yamux-peer exited (${e.code}) before connecting: ${e.stderr}`);
      }),
    ]);
  }
  const session = createSession(socket, { client: goRole === 'server', ...options });
  t.after(() => {
    session.destroy();
    socket.destroy();
  });
  return { session, peer, socket };
}

interface EchoResult {
  sent: number;
  received: number;
  sentSha: string;
  receivedSha: string;
}

/** Writes `bytes` random bytes (hashed), half-closes, and reads the echo to its end concurrently. */
async function echoThrough(stream: Duplex, bytes: number): Promise<EchoResult> {
  const reading = (async () => {
    const h = createHash('sha256');
    let n = 0;
    for await (const chunk of stream) {
      h.update(chunk as Buffer);
      n += (chunk as Buffer).length;
    }
    return { n, sha: h.digest('hex') };
  })();
  const h = createHash('sha256');
  for (let left = bytes; left > 0; left -= CHUNK_BYTES) {
    const chunk = randomBytes(Math.min(CHUNK_BYTES, left));
    h.update(chunk);
    if (!stream.write(chunk)) await once(stream, 'drain');
  }
  stream.end();
  const got = await reading;
  return { sent: bytes, received: got.n, sentSha: h.digest('hex'), receivedSha: got.sha };
}

/** Echoes every inbound stream back to itself (half-closing after the peer's FIN); collects stream errors. */
function serveEcho(session: Session): Error[] {
  const errors: Error[] = [];
  session.on('stream', (s) =>
    pipeline(s, s, (err: Error | null) => {
      if (err) errors.push(err);
    }),
  );
  return errors;
}

/** Polls `condition` every few ms until true; fails after 10 s with `what`. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs `open()` and returns the MuxError it failed with, synchronously or as the stream's 'error'. */
async function openFailure(session: Session): Promise<unknown> {
  try {
    const s = session.open();
    const [err] = await once(s, 'error');
    return err;
  } catch (err) {
    return err;
  }
}

test('streams opened by us are echoed byte for byte by a Go server (4 × 16 MiB, SHA-256)', async (t) => {
  const { session } = await connect(t, 'server', 'echo');
  const results = await Promise.all(Array.from({ length: 4 }, () => echoThrough(session.open(), 16 * MiB)));
  for (const r of results) {
    assert.equal(r.received, r.sent);
    assert.equal(r.receivedSha, r.sentSha);
  }
});

test('streams a Go client opens are echoed byte for byte by us (4 × 16 MiB, checked by the Go side)', async (t) => {
  const { session, peer } = await connect(t, 'client', 'echo-open', { args: ['4', String(16 * MiB)] });
  const errors = serveEcho(session);
  assert.equal(await peer.line('OK'), 'OK');
  const exit = await peer.exited;
  assert.equal(exit.code, 0, exit.stderr);
  assert.deepEqual(errors, []);
});

test('server-initiated streams interoperate: we open to a Go client, which echoes', async (t) => {
  const { session } = await connect(t, 'client', 'echo');
  const results = await Promise.all(Array.from({ length: 2 }, () => echoThrough(session.open(), 2 * MiB)));
  for (const r of results) assert.deepEqual([r.received, r.receivedSha], [r.sent, r.sentSha]);
});

test('a Go server opens streams to us and checks our echo', async (t) => {
  const { session, peer } = await connect(t, 'server', 'echo-open', { args: ['2', String(2 * MiB)] });
  const errors = serveEcho(session);
  assert.equal(await peer.line('OK'), 'OK');
  const exit = await peer.exited;
  assert.equal(exit.code, 0, exit.stderr);
  assert.deepEqual(errors, []);
});

test('300 streams a Go client opens at once (beyond its 256 in-flight SYNs) are all acknowledged and echoed', async (t) => {
  const { session, peer } = await connect(t, 'client', 'echo-open', { args: ['300', '4096'] });
  const errors = serveEcho(session);
  assert.equal(await peer.line('OK'), 'OK');
  assert.equal((await peer.exited).code, 0);
  assert.deepEqual(errors, []);
  assert.equal(session.stats.streamsAccepted, 300);
});

test('200 streams we open at once to a Go server are all echoed', async (t) => {
  const { session } = await connect(t, 'server', 'echo');
  const results = await Promise.all(Array.from({ length: 200 }, () => echoThrough(session.open(), 4096)));
  for (const r of results) assert.deepEqual([r.received, r.receivedSha], [r.sent, r.sentSha]);
  assert.equal(session.stats.streamsOpened, 200);
});

test('our keepalive pings are answered by hashicorp and give an RTT', async (t) => {
  const { session } = await connect(t, 'server', 'echo', { options: { keepAliveIntervalMs: 20 } });
  assert.equal(session.rttMs, undefined);
  await until(() => session.rttMs !== undefined, 'a keepalive pong');
  assert.ok(session.rttMs! >= 0);
  assert.equal(session.isClosed, false);
});

test('16 MiB windows on both sides carry one 32 MiB stream intact', async (t) => {
  const { session } = await connect(t, 'server', 'echo', {
    flags: ['-window', String(16 * MiB)],
    options: { maxStreamWindowBytes: 16 * MiB },
  });
  const r = await echoThrough(session.open(), 32 * MiB);
  assert.deepEqual([r.received, r.receivedSha], [r.sent, r.sentSha]);
});

test('auto-tuned windows growing to 16 MiB are honoured by hashicorp: one 32 MiB stream intact, window grown', async (t) => {
  const { session } = await connect(t, 'server', 'echo', {
    flags: ['-window', String(16 * MiB)],
    options: { maxStreamWindowBytes: 16 * MiB, autoTuneWindow: true, keepAliveIntervalMs: 0 },
  });
  await session.ping(); // an RTT to tune against from the first window on
  const stream = session.open();
  const r = await echoThrough(stream, 32 * MiB);
  assert.deepEqual([r.received, r.receivedSha], [r.sent, r.sentSha]);
  assert.ok(stream.receiveWindowBytes > WINDOW_BYTES, `window ${stream.receiveWindowBytes}`);
  assert.ok(stream.receiveWindowBytes <= 16 * MiB);
});

test('after we half-close, the Go peer still writes to us and then sends its FIN', async (t) => {
  const { session } = await connect(t, 'server', 'echo');
  const stream = session.open();
  stream.write('hello, ');
  // Our FIN goes out before the echo can come back: everything read below is written by Go after it.
  stream.end('yamux');
  assert.equal(stream.writableEnded, true);
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  assert.equal(Buffer.concat(parts).toString(), 'hello, yamux');
  assert.equal(stream.readableEnded, true);
});

for (const goRole of ['server', 'client'] as const) {
  test(`a stream reset by a Go ${goRole} errors with PT_ERR_MUX_STREAM_RESET and leaves the session usable`, async (t) => {
    const { session, peer } = await connect(t, goRole, 'rst');
    for (let i = 0; i < 2; i++) {
      const stream = session.open();
      stream.resume();
      const failed = once(stream, 'error');
      stream.write('abcd'); // the peer reads 4 bytes, then resets; we never end our side
      const [err] = await failed;
      assert.equal((err as { code?: string }).code, 'PT_ERR_MUX_STREAM_RESET');
      assert.equal(await peer.line('RST '), `RST ${stream.id}`);
    }
    assert.equal(session.isClosed, false);
  });

  test(`a GoAway from a Go ${goRole} makes open() fail with PT_ERR_MUX_GOAWAY`, async (t) => {
    const { session, peer, socket } = await connect(t, goRole, 'goaway');
    await peer.line('GOAWAY');
    if (!session.remoteGoAway) await once(session, 'goaway');
    assert.equal(session.remoteGoAway, true);
    const err = await openFailure(session);
    assert.equal((err as { code?: string }).code, 'PT_ERR_MUX_GOAWAY');
    session.destroy();
    socket.destroy();
    // The peer accepted no stream after its GoAway and says so when the session ends.
    const exit = await peer.exited;
    assert.equal(exit.code, 0, exit.stderr);
  });

  test(`pings cross both ways with a Go ${goRole}`, async (t) => {
    const { session, peer, socket } = await connect(t, goRole, 'ping');
    const goRtt = Number((await peer.line('RTT ')).split(' ')[1]);
    assert.ok(Number.isFinite(goRtt) && goRtt >= 0, `Go RTT ${goRtt}`);
    const rtt = await session.ping();
    assert.ok(Number.isFinite(rtt) && rtt >= 0, `our RTT ${rtt}`);
    assert.equal(session.rttMs, rtt);
    socket.destroy();
    const exit = await peer.exited;
    assert.equal(exit.code, 0, exit.stderr);
  });
}

test('a stream we stop reading holds a hashicorp writer to our 256 KiB window, and resumes', async (t) => {
  const { session, peer } = await connect(t, 'client', 'echo-open', { args: ['1', String(8 * MiB)] });
  const [stream] = (await once(session, 'stream')) as [Stream];
  // Nobody reads yet: hashicorp may send one window, then must wait for our update.
  await until(() => stream.readableLength >= WINDOW_BYTES, 'the first window to arrive');
  await session.ping(); // a full round trip: anything sent beyond the window would be here by now
  await session.ping();
  assert.equal(stream.readableLength, WINDOW_BYTES);
  assert.ok(session.stats.bytesIn < WINDOW_BYTES + 64 * 1024, `bytesIn ${session.stats.bytesIn}`);
  const errors: Error[] = [];
  pipeline(stream, stream, (err: Error | null) => {
    if (err) errors.push(err);
  });
  assert.equal(await peer.line('OK'), 'OK');
  assert.equal((await peer.exited).code, 0);
  assert.deepEqual(errors, []);
});

test('a GoAway we send makes hashicorp refuse to open streams (ErrRemoteGoAway)', async (t) => {
  // -ping-first: the Go client's ping is answered after our GoAway (sent before any I/O is read),
  // so by the time it opens, it has seen the GoAway.
  const { session, peer } = await connect(t, 'client', 'echo-open', { flags: ['-ping-first'], args: ['1', '1024'] });
  session.goAway();
  assert.equal(session.localGoAway, true);
  const exit = await peer.exited;
  assert.equal(exit.code, 1);
  assert.match(exit.stderr, /open: remote end is not accepting connections/);
});

test('our graceful close() lets an open stream finish with hashicorp, then ends the session', async (t) => {
  const { session, peer } = await connect(t, 'server', 'echo');
  const echo = echoThrough(session.open(), 4 * MiB);
  const closed = session.close(20_000);
  const r = await echo;
  assert.deepEqual([r.received, r.receivedSha], [r.sent, r.sentSha]);
  await closed;
  assert.equal(session.isClosed, true);
  const exit = await peer.exited;
  assert.equal(exit.code, 0, exit.stderr);
});

test('a stream we destroy reaches hashicorp as a connection reset', async (t) => {
  const { session, peer, socket } = await connect(t, 'server', 'echo');
  const stream = session.open();
  stream.on('error', () => {
    /* destroyed below on purpose */
  });
  stream.write('before reset');
  await once(stream, 'data'); // echoed: the stream is established on both sides
  stream.destroy();
  // Frames stay in order on the connection: once a later stream's echo is back, Go has seen the RST.
  const second = await echoThrough(session.open(), 1024);
  assert.equal(second.receivedSha, second.sentSha);
  socket.destroy();
  // hashicorp's echo loop got ErrConnectionReset on that stream and reports it when the session ends.
  const exit = await peer.exited;
  assert.equal(exit.code, 1);
  assert.match(exit.stderr, new RegExp(`stream ${stream.id}: connection reset`));
});
