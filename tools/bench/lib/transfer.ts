import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Duplex, Writable } from 'node:stream';
import WebSocket, { createWebSocketStream } from 'ws';
import { createSession } from '@pipeops/tunnel-mux';
import type { Session } from '@pipeops/tunnel-mux';
import { mbPerSecond } from './stats.ts';

/** Size of one write / one raw ws message: 64 KiB. */
export const CHUNK_BYTES = 64 * 1024;
const CHUNK = randomBytes(CHUNK_BYTES);
/** Raw ws sends allowed in flight before waiting for a send callback (16 × 64 KiB = 1 MiB). */
const RAW_MAX_INFLIGHT = 16;

/** Opens a ws client to the sink on `path`, resolved once open. Deflate off, like the tunnel. */
export async function openWebSocket(port: number, path: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false });
  await once(ws, 'open');
  return ws;
}

/**
 * Baseline: sends `totalBytes` as 64 KiB binary messages (bounded in flight),
 * then a text "done"; the sink answers with the byte count it received.
 * Returns MB/s from first send to that answer.
 */
export async function rawWsSample(ws: WebSocket, totalBytes: number): Promise<number> {
  const start = process.hrtime.bigint();
  let inflight = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const sent = (err?: Error): void => {
    inflight--;
    if (err) failure ??= err;
    wake?.();
  };
  for (let left = totalBytes; left > 0; left -= CHUNK_BYTES) {
    while (inflight >= RAW_MAX_INFLIGHT)
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    if (failure) throw failure;
    inflight++;
    ws.send(left >= CHUNK_BYTES ? CHUNK : CHUNK.subarray(0, left), { binary: true }, sent);
  }
  const reply = once(ws, 'message');
  ws.send('done');
  const [data] = (await reply) as [Buffer];
  const ns = process.hrtime.bigint() - start;
  const got = Number(data.toString());
  if (got !== totalBytes) throw new Error(`raw ws: sink counted ${got} bytes, sent ${totalBytes}`);
  return mbPerSecond(totalBytes, ns);
}

/** A mux client session over a ws connection to the sink's `/mux`, whose receive window is `windowBytes`. */
export async function muxOverWebSocket(port: number, windowBytes: number): Promise<{ session: Session; close(): Promise<void> }> {
  const ws = await openWebSocket(port, `/mux?window=${windowBytes}`);
  const session = createSession(createWebSocketStream(ws), { client: true, maxStreamWindowBytes: windowBytes });
  return { session, close: () => closeAll(session, () => ws.terminate()) };
}

/** A mux client session over plain TCP to the sink (whose window is its --tcp-window). */
export async function muxOverTcp(port: number, windowBytes: number): Promise<{ session: Session; close(): Promise<void> }> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  const session = createSession(socket, { client: true, maxStreamWindowBytes: windowBytes });
  return { session, close: () => closeAll(session, () => socket.destroy()) };
}

async function closeAll(session: Session, terminate: () => void): Promise<void> {
  session.destroy();
  terminate();
}

/**
 * Opens `streams` streams at once; each sends `totalBytes / streams` bytes
 * and half-closes; the sink answers each with the count it received (8 bytes,
 * big-endian) and ends. Returns MB/s from first open to the last answer.
 */
export async function muxSample(session: Session, streams: number, totalBytes: number): Promise<number> {
  const perStream = Math.floor(totalBytes / streams);
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: streams }, () => oneStream(session, perStream)));
  return mbPerSecond(perStream * streams, process.hrtime.bigint() - start);
}

async function oneStream(session: Session, bytes: number): Promise<void> {
  const stream = session.open();
  const reply = readAll(stream);
  await writeBytes(stream, bytes);
  stream.end();
  const answer = await reply;
  const got = answer.length === 8 ? Number(answer.readBigUInt64BE()) : -1;
  if (got !== bytes) throw new Error(`mux stream ${stream.id}: sink counted ${got} bytes, sent ${bytes}`);
}

/** Writes `bytes` bytes of the shared random chunk, honouring backpressure. */
export async function writeBytes(w: Writable, bytes: number): Promise<void> {
  for (let left = bytes; left > 0; left -= CHUNK_BYTES) {
    const ok = w.write(left >= CHUNK_BYTES ? CHUNK : CHUNK.subarray(0, left));
    if (!ok) await once(w, 'drain');
  }
}

/** Reads a Duplex to its end; rejects on error. */
export async function readAll(r: Duplex): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of r) parts.push(part as Buffer);
  return Buffer.concat(parts);
}
