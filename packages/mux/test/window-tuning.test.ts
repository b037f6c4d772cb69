import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Stream } from '../src/index.ts';
import { payload, pump, sha256, waitFor } from './helpers/io.ts';
import { overLongLink } from './helpers/sessions.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
/** One-way delay of the test link (ms): an RTT of about 20 ms. */
const DELAY_MS = 10;

interface Observed {
  bytes: number;
  sha256: string;
  maxWindow: number;
  maxHeld: number;
  lastWindow: number;
}

/** Reads to the end, recording the largest receive window and unread backlog seen after each chunk. */
function readObserving(s: Stream): Promise<Observed> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let bytes = 0;
    let maxWindow = s.receiveWindowBytes;
    let maxHeld = 0;
    s.on('data', (c: Buffer) => {
      parts.push(c);
      bytes += c.length;
      maxWindow = Math.max(maxWindow, s.receiveWindowBytes);
      maxHeld = Math.max(maxHeld, s.readableLength + c.length);
    });
    s.once('end', () => resolve({ bytes, sha256: sha256(Buffer.concat(parts)), maxWindow, maxHeld, lastWindow: s.receiveWindowBytes }));
    s.once('error', reject);
  });
}

test('with autoTuneWindow a stream over a long link grows its receive window from 256 KiB to the cap and never beyond', async (t) => {
  const cap = 2 * MiB;
  const { writerSide, readerSide } = overLongLink(t, { maxStreamWindowBytes: cap, autoTuneWindow: true }, DELAY_MS);
  const data = payload(24 * MiB, 21);
  const w = writerSide.open();
  pump(w, data, CHUNK);
  const r = await readerSide.accept();
  assert.equal(r.receiveWindowBytes, 256 * KiB, 'every stream starts at the spec window');
  const got = await readObserving(r);
  assert.equal(got.bytes, data.length);
  assert.equal(got.sha256, sha256(data));
  assert.equal(got.maxWindow, cap, 'the window grew all the way to the cap, and no further');
  assert.ok(got.maxHeld <= cap, `unread bytes ${got.maxHeld} stayed within the cap`);
});

test('without autoTuneWindow the same long link keeps the fixed window', async (t) => {
  const { writerSide, readerSide } = overLongLink(t, { maxStreamWindowBytes: 2 * MiB }, DELAY_MS);
  const data = payload(4 * MiB, 22);
  const w = writerSide.open();
  pump(w, data, CHUNK);
  const r = await readerSide.accept();
  const got = await readObserving(r);
  assert.equal(got.sha256, sha256(data));
  assert.deepEqual([got.maxWindow, got.lastWindow], [2 * MiB, 2 * MiB]);
});

test('with autoTuneWindow but the default cap the window stays at the spec 256 KiB', async (t) => {
  const { writerSide, readerSide } = overLongLink(t, { autoTuneWindow: true }, DELAY_MS);
  const data = payload(4 * MiB, 23);
  const w = writerSide.open();
  pump(w, data, CHUNK);
  const got = await readObserving(await readerSide.accept());
  assert.equal(got.sha256, sha256(data));
  assert.equal(got.maxWindow, 256 * KiB);
});

test('a paused reader with a grown window receives no more than that window, and its window stops growing', async (t) => {
  const { writerSide, readerSide } = overLongLink(t, { maxStreamWindowBytes: 16 * MiB, autoTuneWindow: true }, DELAY_MS);
  const data = payload(64 * MiB, 24);
  const w = writerSide.open();
  pump(w, data, CHUNK);
  const r = await readerSide.accept();
  // Read eagerly until the window has grown, then stop reading.
  const parts: Buffer[] = [];
  let bytes = 0;
  const onData = (c: Buffer): void => {
    parts.push(c);
    bytes += c.length;
  };
  r.on('data', onData);
  await waitFor(() => r.receiveWindowBytes >= 1 * MiB, 20_000, 'the window to grow to 1 MiB');
  r.off('data', onData);
  r.pause();
  const window = r.receiveWindowBytes;
  // Two round trips: whatever the writer's credit allowed has landed (the link is FIFO).
  await readerSide.ping();
  await readerSide.ping();
  const held = r.readableLength;
  assert.ok(held > 0 && held <= window, `the paused reader holds ${held} bytes, within its window of ${window}`);
  assert.ok(bytes + held < data.length, 'the writer had more to send');
  // The writer is stopped, not slowed: nothing more arrives.
  await readerSide.ping();
  await readerSide.ping();
  assert.equal(r.readableLength, held, 'nothing arrived while the reader stayed paused');
  assert.equal(r.receiveWindowBytes, window, 'no growth while paused');
  // Reading again resumes the writer and delivers every byte in order.
  const rest = readObserving(r);
  r.resume();
  const got = await rest;
  assert.equal(bytes + got.bytes, data.length);
  assert.ok(got.maxWindow <= 16 * MiB);
});

test('a reader that never reads holds exactly the spec 256 KiB, however large the auto-tuning cap', async (t) => {
  const { writerSide, readerSide } = overLongLink(t, { maxStreamWindowBytes: 16 * MiB, autoTuneWindow: true }, DELAY_MS);
  const w = writerSide.open();
  pump(w, payload(4 * MiB, 25), CHUNK);
  const r = await readerSide.accept();
  await waitFor(() => r.readableLength >= 256 * KiB, 10_000, 'the first window to arrive');
  await readerSide.ping();
  await readerSide.ping();
  assert.equal(r.readableLength, 256 * KiB);
  assert.equal(r.receiveWindowBytes, 256 * KiB);
});
