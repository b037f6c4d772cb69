// sessionWindowGrowthBytes: what auto-tuning adds to the streams' receive
// windows is bounded over the whole session, so a burst of many fast streams
// cannot make a session hold streams × maxStreamWindowBytes unread (issue 13:
// memory under a burst of 200 concurrent responses).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Session, Stream } from '../src/index.ts';
import { payload, pump, sha256, waitFor } from './helpers/io.ts';
import { overLongLink } from './helpers/sessions.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
const DELAY_MS = 10;

/** Reads to the end, then ends its own side; the session's total growth is sampled after every chunk. */
function readAll(s: Stream, session: Session, seen: { maxGrowth: number; maxWindow: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => {
      parts.push(c);
      seen.maxGrowth = Math.max(seen.maxGrowth, session.windowGrowthBytes);
      seen.maxWindow = Math.max(seen.maxWindow, s.receiveWindowBytes);
    });
    s.once('end', () => {
      s.end(); // our side closes too: the stream is done and leaves the session
      resolve(sha256(Buffer.concat(parts)));
    });
    s.once('error', reject);
  });
}

test('streams read quickly over a long link grow their windows together no further than the session budget, and give it back', async (t) => {
  const budget = 1 * MiB;
  const { writerSide, readerSide } = overLongLink(t, { maxStreamWindowBytes: 4 * MiB, autoTuneWindow: true, sessionWindowGrowthBytes: budget }, DELAY_MS);
  const streams = 4;
  const data = Array.from({ length: streams }, (_, i) => payload(12 * MiB, 40 + i));
  for (const d of data) pump(writerSide.open(), d, CHUNK);
  const seen = { maxGrowth: 0, maxWindow: 0 };
  const reads: Promise<string>[] = [];
  for (let i = 0; i < streams; i++) reads.push(readAll(await readerSide.accept(), readerSide, seen));
  const digests = await Promise.all(reads);
  assert.deepEqual(digests, data.map(sha256), 'every byte, in order');
  assert.ok(seen.maxGrowth > 0, 'windows grew');
  assert.ok(seen.maxGrowth <= budget, `growth ${seen.maxGrowth} stayed within the budget ${budget}`);
  assert.ok(seen.maxWindow <= 256 * KiB + budget, `no window passed 256 KiB + the budget (${seen.maxWindow})`);
  await waitFor(() => readerSide.windowGrowthBytes === 0, 5_000, 'the closed streams gave their growth back');
});

test('one stream alone still grows to maxStreamWindowBytes when the budget allows it', async (t) => {
  const cap = 2 * MiB;
  const { writerSide, readerSide } = overLongLink(t, { maxStreamWindowBytes: cap, autoTuneWindow: true, sessionWindowGrowthBytes: 8 * MiB }, DELAY_MS);
  const data = payload(24 * MiB, 50);
  pump(writerSide.open(), data, CHUNK);
  const seen = { maxGrowth: 0, maxWindow: 0 };
  assert.equal(await readAll(await readerSide.accept(), readerSide, seen), sha256(data));
  assert.equal(seen.maxWindow, cap);
  assert.equal(seen.maxGrowth, cap - 256 * KiB);
});
