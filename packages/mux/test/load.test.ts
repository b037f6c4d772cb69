import assert from 'node:assert/strict';
import type { Stream } from '../src/index.ts';
import { hashAll, payload, readAll, sha256 } from './helpers/io.ts';
import { connect, transportTest } from './helpers/sessions.ts';

const MiB = 1024 * 1024;

transportTest(
  'a small request/response completes while another stream pushes 64 MiB (round-robin writes)',
  async (t, kind) => {
    const { client, server } = await connect(t, kind);
    const events: string[] = [];
    // A frame's payload may arrive in pieces (the transport splits it), so the
    // server tells the two streams apart by their first byte, not by a whole read.
    server.on('stream', (s: Stream) => {
      s.once('data', (first: Buffer) => {
        if (first[0] === 'p'.charCodeAt(0)) {
          void readAll(s).then(() => s.end('pong!'));
          return;
        }
        s.resume();
        s.once('end', () => {
          events.push('bulk done');
          s.end();
        });
      });
    });
    const bulk = client.open();
    const block = payload(MiB, 9);
    let sent = 0;
    let startSmall: () => void = () => {};
    const smallStarted = new Promise<void>((resolve) => {
      startSmall = resolve;
    });
    const writeBulk = (): void => {
      while (sent < 64) {
        sent++;
        if (sent === 8) startSmall(); // the bulk stream is well under way
        if (!bulk.write(block)) {
          bulk.once('drain', writeBulk);
          return;
        }
      }
      bulk.end();
    };
    writeBulk();
    const bulkDone = readAll(bulk);
    await smallStarted;
    const small = client.open();
    small.end('ping?');
    assert.equal((await readAll(small)).toString(), 'pong!');
    events.push('small done');
    // Pings are control frames: they overtake the queued bulk data.
    await client.ping();
    events.push('ping done');
    await bulkDone;
    assert.deepEqual(events, ['small done', 'ping done', 'bulk done']);
  },
  { timeout: 60_000 },
);

transportTest(
  '100 streams each echoing 1 MiB both ways at once complete, three runs (no deadlock)',
  async (t, kind) => {
    const { client, server } = await connect(t, kind);
    server.on('stream', (s: Stream) => s.pipe(s));
    const size = MiB;
    const data = payload(size, 5);
    const want = sha256(data);
    for (let run = 0; run < 3; run++) {
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          const s = client.open();
          const got = hashAll(s);
          s.end(data);
          assert.deepEqual(await got, { sha256: want, bytes: size });
        }),
      );
    }
    assert.equal(client.numStreams, 0);
  },
  { timeout: 60_000 },
);
