import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import { createSession, type Session, type Stream } from '../src/index.ts';
import { payload, readAll } from './helpers/io.ts';
import { directMemoryPair, type DirectMemoryEnd } from './helpers/transports.ts';

/** Sessions over a pair of in-memory ends that offer the DirectTransport (a test double of the WebSocket framing). */
function directSessions(t: TestContext): { client: Session; server: Session; clientEnd: DirectMemoryEnd } {
  const pair = directMemoryPair();
  const client = createSession(pair.a, { client: true, keepAliveIntervalMs: 0 });
  const server = createSession(pair.b, { client: false, keepAliveIntervalMs: 0 });
  t.after(async () => {
    client.destroy();
    server.destroy();
    await pair.close();
  });
  return { client, server, clientEnd: pair.a };
}

test('over a direct transport, what a stream writes in one turn leaves as one batch, past the Duplex', async (t) => {
  const { client, server, clientEnd } = directSessions(t);
  const accepted = once(server, 'stream') as Promise<[Stream]>;
  const stream = client.open();
  stream.write('GET / HTTP/1.1\r\n');
  stream.write('host: x\r\n');
  stream.end('\r\n');
  const [remote] = await accepted;
  assert.equal((await readAll(remote)).toString(), 'GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  // The SYN, the data frame and the FIN of that turn: one batch (none at all if the frames went through the Duplex).
  assert.equal(clientEnd.stats.batches, 1);
});

test('over a direct transport that asks to wait, the session waits for its drain and every byte arrives in order', async (t) => {
  const { client, server, clientEnd } = directSessions(t);
  const accepted = once(server, 'stream') as Promise<[Stream]>;
  const data = payload(4 * 1024 * 1024, 7);
  const stream = client.open();
  stream.end(data);
  const [remote] = await accepted;
  assert.ok((await readAll(remote)).equals(data));
  assert.ok(clientEnd.stats.waits > 0, `the transport never asked to wait (${clientEnd.stats.batches} batches)`);
});
