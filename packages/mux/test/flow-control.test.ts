import assert from 'node:assert/strict';
import type { Session, Stream } from '../src/index.ts';
import { hashAll, payload, pump, sha256, waitFor } from './helpers/io.ts';
import { connect, transportTest } from './helpers/sessions.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 16 * KiB;

async function pausedReaderHoldsOneWindow(writerSide: Session, readerSide: Session, readerOpens: boolean, window: number): Promise<void> {
  const data = payload(3 * window, window);
  let writer: Stream;
  let reader: Stream;
  if (readerOpens) {
    reader = readerSide.open();
    reader.write('go');
    writer = await writerSide.accept();
    writer.read(0);
  } else {
    writer = writerSide.open();
    const acc = readerSide.accept();
    writer.write(Buffer.alloc(0));
    reader = await acc;
  }
  const w = pump(writer, data, CHUNK);
  await waitFor(() => reader.readableLength >= window, 10_000, 'reader buffer to fill one window');
  // Two ping round trips: anything in flight has landed, and the writer had every chance to send more.
  await readerSide.ping();
  await writerSide.ping();
  assert.equal(reader.readableLength, window, 'the receive side holds exactly one window');
  assert.ok(w.written() <= window + 64 * KiB + 2 * CHUNK, `writer stopped after one window (wrote ${w.written()})`);
  assert.ok(writer.writableLength <= 64 * KiB + CHUNK, 'writer-side buffering is bounded by its highWaterMark');
  // While blocked the writer sends nothing but pongs: no polling.
  const before = writerSide.stats.framesOut;
  await readerSide.ping();
  await readerSide.ping();
  assert.equal(writerSide.stats.framesOut - before, 2);
  // Reading resumes the writer through window updates alone.
  const got = await hashAll(reader);
  assert.equal(got.bytes, data.length);
  assert.equal(got.sha256, sha256(data));
}

transportTest('a paused reader stops the far writer after one 256 KiB window and reading resumes it', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  await pausedReaderHoldsOneWindow(client, server, false, 256 * KiB);
});

transportTest('a larger window is advertised on accept (ACK) so one stream can carry 1 MiB in flight', async (t, kind) => {
  const { client, server } = await connect(t, kind, {}, { maxStreamWindowBytes: MiB });
  await pausedReaderHoldsOneWindow(client, server, false, MiB);
});

transportTest('a larger window is advertised on open (SYN) so the opener can receive 1 MiB in flight', async (t, kind) => {
  const { client, server } = await connect(t, kind, { maxStreamWindowBytes: MiB }, {});
  await pausedReaderHoldsOneWindow(server, client, true, MiB);
});

transportTest('a reader that consumes slowly with read() keeps the transfer going to the end', async (t, kind) => {
  const { client, server } = await connect(t, kind);
  const data = payload(2 * MiB, 3);
  const s = client.open();
  pump(s, data, CHUNK);
  const inbound = await server.accept();
  const parts: Buffer[] = [];
  await new Promise<void>((resolve) => {
    inbound.on('readable', () => {
      let c: Buffer | null;
      while ((c = inbound.read(1000) as Buffer | null) !== null) parts.push(c);
    });
    inbound.on('end', resolve);
  });
  assert.equal(sha256(Buffer.concat(parts)), sha256(data));
});
