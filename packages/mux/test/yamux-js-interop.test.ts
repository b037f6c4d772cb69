import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { test, type TestContext } from 'node:test';
import type { WebSocket } from 'ws';
import * as yamuxJs from 'yamux-js';
import { Session, type Stream } from '../src/index.ts';
import { payload, sha256 } from './helpers/io.ts';
import { rawWebSocketPair } from './helpers/transports.ts';

// yamux-js 0.2.0 only parses frames that arrive whole, so each WebSocket
// message carries exactly one frame (both our Session and yamux-js push one
// buffer per frame).
function wireMessages(session: Duplex, ws: WebSocket): void {
  session.on('data', (frame: Buffer) => ws.send(frame));
  ws.on('message', (m: Buffer) => session.write(m));
  session.on('error', () => {});
}

async function setup(t: TestContext): Promise<{ clientWs: WebSocket; serverWs: WebSocket }> {
  const pair = await rawWebSocketPair();
  t.after(() => pair.close());
  return pair;
}

function readBytes(s: Duplex, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer): void => {
      parts.push(c);
      got += c.length;
      if (got >= n) {
        s.off('data', onData);
        resolve(Buffer.concat(parts));
      }
    };
    s.on('data', onData);
  });
}

const quiet = { enableKeepAlive: false, logger: () => {} };

test('yamux-js as client echoes a few KiB through our server session, and its FIN ends our stream', async (t) => {
  const { clientWs, serverWs } = await setup(t);
  const server = new Session({ client: false, keepAliveIntervalMs: 0 });
  wireMessages(server, serverWs);
  const client = new yamuxJs.Client(quiet);
  wireMessages(client, clientWs);
  t.after(() => {
    server.destroy();
    client.close();
  });
  const ended = new Promise<void>((resolve) =>
    server.on('stream', (s: Stream) => {
      s.on('data', (c: Buffer) => s.write(c));
      s.on('end', resolve);
    }),
  );
  const data = payload(6 * 1024, 11);
  const s = client.open();
  const echoed = readBytes(s, data.length);
  s.write(data);
  assert.equal(sha256(await echoed), sha256(data));
  s.close();
  await ended;
});

test('our client session echoes a few KiB through a yamux-js server', async (t) => {
  const { clientWs, serverWs } = await setup(t);
  const server = new yamuxJs.Server((s: Duplex) => s.on('data', (c: Buffer) => s.write(c)), quiet);
  wireMessages(server, serverWs);
  const client = new Session({ client: true, keepAliveIntervalMs: 0 });
  wireMessages(client, clientWs);
  t.after(() => {
    client.destroy();
    server.close();
  });
  const data = payload(6 * 1024, 12);
  const s = client.open();
  const echoed = readBytes(s, data.length);
  s.write(data);
  assert.equal(sha256(await echoed), sha256(data));
  const rtt = await client.ping();
  assert.ok(rtt >= 0, 'yamux-js answers our ping');
});
