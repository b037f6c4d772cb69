import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { tunnelWebSocketClientOptions } from '../src/index.ts';

/**
 * Dials a local ws server with the options the helper gives for `dialUrl` and
 * returns the raw bytes of the first client frame and the message the server got.
 */
async function firstClientFrame(t: TestContext, dialUrl: string, payload: Buffer): Promise<{ frame: Buffer; message: Buffer }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(wss, 'listening');
  const { port } = wss.address() as AddressInfo;
  const accepted = once(wss, 'connection') as Promise<[WebSocket, { socket: import('node:net').Socket }]>;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, tunnelWebSocketClientOptions(new URL(dialUrl)));
  const [[server, req]] = await Promise.all([accepted, once(client, 'open')]);
  t.after(async () => {
    client.terminate();
    server.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  const raw: Buffer[] = [];
  // Copied before ws sees it: ws unmasks the received buffer in place.
  req.socket.prependListener('data', (c: Buffer) => raw.push(Buffer.from(c)));
  const message = once(server, 'message') as Promise<[Buffer]>;
  client.send(payload);
  const [m] = await message;
  return { frame: Buffer.concat(raw), message: m };
}

test('a wss: dial sends frames with an all-zero mask, so the payload crosses unmasked and intact', async (t) => {
  const payload = Buffer.from('tunnel bytes, sent as they are');
  const { frame, message } = await firstClientFrame(t, 'wss://gateway.example/v1/tunnel', payload);
  assert.equal(frame[1]! & 0x80, 0x80, 'the mask bit is still set, as RFC 6455 requires of clients');
  assert.deepEqual(frame.subarray(2, 6), Buffer.alloc(4), 'masking key');
  assert.deepEqual(frame.subarray(6, 6 + payload.length), payload, 'payload on the wire');
  assert.deepEqual(message, payload);
});

test('a plain ws: dial keeps random masks', async (t) => {
  const payload = Buffer.alloc(64, 0x61);
  const { frame, message } = await firstClientFrame(t, 'ws://gateway.example/v1/tunnel', payload);
  assert.notDeepEqual(frame.subarray(6, 6 + payload.length), payload, 'payload on the wire is masked');
  assert.deepEqual(message, payload);
  assert.equal(tunnelWebSocketClientOptions(new URL('ws://x')).generateMask, undefined);
});

test('tunnel dials never negotiate permessage-deflate', () => {
  for (const url of ['ws://x/', 'wss://x/']) assert.equal(tunnelWebSocketClientOptions(new URL(url)).perMessageDeflate, false);
});
