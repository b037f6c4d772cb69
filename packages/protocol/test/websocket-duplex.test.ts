import { test, type TestContext } from 'node:test';
import type { Socket } from 'node:net';
import type WebSocket from 'ws';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { createSession, directTransportOf } from '@pipeops/tunnel-mux';
import { TunnelError, websocketDuplex } from '../src/index.ts';
import { waitFor, wsPair } from './helpers/ws-pair.ts';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * Every test runs on both data paths: the stream framing that takes the
 * socket over from ws (what the tunnel uses) and ws's own message path.
 */
const framings = ['auto', 'message'] as const;
function framingTest(name: string, body: (t: TestContext, framing: (typeof framings)[number]) => Promise<void>): void {
  for (const framing of framings) test(`${name} (${framing === 'auto' ? 'stream framing' : 'ws messages'})`, (t) => body(t, framing));
}

/** Whether the receiving side has stopped reading its socket (either path). */
const socketPaused = (ws: WebSocket): boolean => ws.isPaused || (ws as unknown as { _socket: Socket })._socket.isPaused();

async function writeAll(d: Duplex, data: Buffer, chunkBytes: number, onAcked?: (n: number) => void): Promise<void> {
  for (let i = 0; i < data.length; i += chunkBytes) {
    const chunk = data.subarray(i, i + chunkBytes);
    const ok = d.write(chunk, () => onAcked?.(chunk.length));
    if (!ok) await once(d, 'drain');
  }
}

function collect(d: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer): void => {
      parts.push(c);
      n += c.length;
      if (n >= bytes) {
        d.off('data', onData);
        d.pause();
        resolve(Buffer.concat(parts));
      }
    };
    d.on('data', onData);
    d.once('error', reject);
  });
}

framingTest('8 MiB echoed through the duplex come back byte for byte', async (t, framing) => {
  const { server, client } = await wsPair(t);
  const s = websocketDuplex(server, { framing });
  const c = websocketDuplex(client, { framing });
  s.pipe(s);
  const data = randomBytes(8 * 1024 * 1024);
  const received = collect(c, data.length);
  await writeAll(c, data, 100_000);
  const back = await received;
  assert.equal(back.length, data.length);
  assert.equal(sha(back), sha(data));
});

framingTest('a reader that stops reading stops the writer at the far end, and nothing is lost when it resumes', async (t, framing) => {
  const { server, client } = await wsPair(t);
  const s = websocketDuplex(server, { framing });
  const c = websocketDuplex(client, { framing, readableHighWaterMarkBytes: 64 * 1024 });
  c.pause();
  const data = randomBytes(32 * 1024 * 1024);
  let acked = 0;
  const writing = writeAll(s, data, 64 * 1024, (n) => {
    acked += n;
  });
  // The receiving side pauses its socket once its readable buffer is full…
  await waitFor(() => socketPaused(client) && s.writableNeedDrain, 20_000, 'receiver paused and sender blocked');
  // …so the sender cannot have pushed everything, and the receiver holds at most its buffer plus one message.
  assert.ok(acked < data.length, `acked ${acked} of ${data.length}`);
  assert.ok(c.readableLength <= 64 * 1024 + 64 * 1024, `receiver buffered ${c.readableLength}`);
  const received = collect(c, data.length);
  c.resume();
  await writing;
  assert.equal(sha(await received), sha(data));
});

framingTest('end() closes the WebSocket with code 1000 and ends the peer duplex', async (t, framing) => {
  const { server, client } = await wsPair(t);
  const s = websocketDuplex(server, { framing });
  const c = websocketDuplex(client, { framing });
  const closed = once(server, 'close');
  const chunks: Buffer[] = [];
  s.on('data', (b: Buffer) => chunks.push(b));
  c.end(Buffer.from('last words'));
  const [code] = await closed;
  assert.equal(code, 1000);
  if (!s.readableEnded) await once(s, 'end');
  assert.equal(Buffer.concat(chunks).toString(), 'last words');
});

framingTest('destroy() terminates the connection: the peer sees an abnormal close (1006)', async (t, framing) => {
  const { server, client } = await wsPair(t);
  websocketDuplex(server, { framing });
  const c = websocketDuplex(client, { framing });
  const closed = once(server, 'close');
  c.destroy();
  const [code] = await closed;
  assert.equal(code, 1006);
});

framingTest('a text message from the peer destroys the duplex with PT_ERR_WS_TEXT_FRAME and closes with 1003', async (t, framing) => {
  const { server, client } = await wsPair(t);
  const s = websocketDuplex(server, { framing });
  const closed = once(client, 'close');
  const errored = once(s, 'error');
  client.send('hello as text');
  const [err] = (await errored) as [TunnelError];
  assert.ok(err instanceof TunnelError);
  assert.equal(err.code, 'PT_ERR_WS_TEXT_FRAME');
  const [code] = await closed;
  assert.ok(code === 1003 || code === 1006, `close code ${code}`);
});

framingTest('when the peer closes, the writable side finishes too, since a WebSocket cannot be half-open', async (t, framing) => {
  const { server, client } = await wsPair(t);
  const s = websocketDuplex(server, { framing });
  s.resume();
  client.close(1000);
  await once(server, 'close');
  if (!s.writableFinished) await once(s, 'finish');
  assert.equal(s.writable, false);
});

test('an open, untouched WebSocket is taken over by the stream framing; a forced message path stays on ws', async (t) => {
  const { server, client } = await wsPair(t);
  assert.equal(websocketDuplex(server).framing, 'stream');
  assert.equal(websocketDuplex(client, { framing: 'message' }).framing, 'message');
});

test('stream framing and ws messages interoperate on one connection, both ways, byte for byte', async (t) => {
  const { server, client } = await wsPair(t);
  const s = websocketDuplex(server, { framing: 'message' });
  const c = websocketDuplex(client);
  assert.equal(c.framing, 'stream');
  s.pipe(s);
  const data = randomBytes(4 * 1024 * 1024 + 7);
  const received = collect(c, data.length);
  await writeAll(c, data, 65_536 + 3);
  assert.equal(sha(await received), sha(data));
});

test('under the stream framing, ws still answers pings and runs the close handshake', async (t) => {
  const { server, client } = await wsPair(t);
  const s = websocketDuplex(server);
  assert.equal(s.framing, 'stream');
  s.resume();
  client.ping(Buffer.from('are you there'));
  const [payload] = (await once(client, 'pong')) as [Buffer];
  assert.equal(payload.toString(), 'are you there');
  const closed = once(client, 'close');
  s.end();
  const [code] = await closed;
  assert.equal(code, 1000);
});

test('under the stream framing, a mux session sends what one turn produced as one WebSocket message', async (t) => {
  const { server, client } = await wsPair(t);
  const session = createSession(websocketDuplex(server), { client: false, keepAliveIntervalMs: 0 });
  t.after(() => session.destroy());
  const messages: Buffer[] = [];
  client.on('message', (m: Buffer) => messages.push(m));
  const stream = session.open();
  stream.write('one ');
  stream.write('two ');
  stream.end('three');
  // The SYN (12 bytes), the data frames (the first write, then the two that waited for it: 12 + 4, 12 + 9) and the FIN (12).
  await waitFor(() => messages.reduce((n, m) => n + m.length, 0) >= 61, 5_000, 'the frames of the turn');
  assert.equal(messages.length, 1);
  assert.equal(messages[0]?.length, 61);
  assert.match(messages[0]?.toString('latin1') ?? '', /one [\s\S]{12}two three/);
});

test('under the stream framing, the direct transport hands received payloads to its consumer, not to the readable side', async (t) => {
  const { server, client } = await wsPair(t);
  const duplex = websocketDuplex(server);
  const direct = directTransportOf(duplex);
  assert.ok(direct !== undefined);
  const got: Buffer[] = [];
  direct.receiveInto((piece) => got.push(Buffer.from(piece)));
  let viaReadable = 0;
  duplex.on('data', (c: Buffer) => {
    viaReadable += c.length;
  });
  client.send(Buffer.from('first'));
  client.send(Buffer.from('second'));
  await waitFor(() => Buffer.concat(got).length >= 11, 5_000, 'both payloads');
  assert.equal(Buffer.concat(got).toString(), 'firstsecond');
  assert.equal(viaReadable, 0);
});

test('under the stream framing, a batch asks its writer to wait once the socket holds the high-water mark, and calls it back when drained', async (t) => {
  const { server, client } = await wsPair(t);
  const duplex = websocketDuplex(server, { writableHighWaterMarkBytes: 64 * 1024 });
  const direct = directTransportOf(duplex);
  assert.ok(direct !== undefined);
  const peerSocket = (client as unknown as { _socket: Socket })._socket;
  peerSocket.pause();
  const sent: Buffer[] = [];
  let drained = 0;
  let more = true;
  while (more && sent.length < 1000) {
    const piece = randomBytes(256 * 1024);
    sent.push(piece);
    more = direct.writeBatch([piece.subarray(0, 1000), piece.subarray(1000)], () => {
      drained++;
    });
  }
  assert.equal(more, false, 'the transport never asked to wait');
  assert.ok(((server as unknown as { _socket: Socket })._socket.writableLength ?? 0) >= 64 * 1024);
  assert.equal(drained, 0);
  const received: Buffer[] = [];
  client.on('message', (m: Buffer) => received.push(m));
  peerSocket.resume();
  await waitFor(() => drained === 1 && received.length === sent.length, 20_000, 'the drain and every message');
  assert.equal(sha(Buffer.concat(received)), sha(Buffer.concat(sent)));
});
