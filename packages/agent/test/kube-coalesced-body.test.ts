// The request body the agent hands to undici: pieces that arrive within one
// turn of the event loop leave as one chunk, bytes and order intact, with
// backpressure and errors carried through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { coalescedBody } from '../src/kube/coalesced-body.ts';

async function chunksOf(r: Readable): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return out;
}

test('pieces written in one turn leave as one chunk, in order; pieces of the next turn as the next', async () => {
  const source = new PassThrough();
  const body = coalescedBody(source);
  const got = chunksOf(body);
  for (const s of ['ab', 'cd', 'ef']) source.write(s);
  await turn();
  await turn();
  for (const s of ['gh', 'ij']) source.write(s);
  source.end();
  const chunks = await got;
  assert.deepEqual(
    chunks.map((c) => c.toString()),
    ['abcdef', 'ghij'],
  );
});

test('a lone piece passes as the same buffer (no copy); an empty body ends with no chunk', async () => {
  const piece = Buffer.from('only piece');
  const source = new PassThrough();
  const got = chunksOf(coalescedBody(source));
  source.end(piece);
  const chunks = await got;
  assert.equal(chunks.length, 1);
  assert.equal(chunks[0]!.buffer, piece.buffer);
  assert.deepEqual(await chunksOf(coalescedBody(Readable.from([], { objectMode: false }))), []);
});

test('more than 256 KiB gathered in one turn is passed on at once, every byte kept', async () => {
  const source = new PassThrough({ highWaterMark: 4 << 20 });
  const got = chunksOf(coalescedBody(source));
  const piece = Buffer.alloc(16_384, 7);
  for (let i = 0; i < 40; i++) source.write(piece); // 640 KiB in one turn
  source.end();
  const chunks = await got;
  assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
  assert.ok(chunks.every((c) => c.length <= 256 * 1024 + 16_384));
  assert.equal(Buffer.concat(chunks).length, 40 * 16_384);
});

test('a reader that does not read pauses the source; reading resumes it', async () => {
  const source = new PassThrough({ highWaterMark: 16_384 });
  const body = coalescedBody(source);
  body.pause();
  const piece = Buffer.alloc(64 * 1024, 1);
  let accepted = 0;
  // Writes fill the body's buffer (256 KiB), then the source's: the writer is told to wait.
  while (source.write(piece)) {
    accepted += piece.length;
    await turn();
    assert.ok(accepted < 8 << 20, 'the source never pushed back');
  }
  assert.ok(source.isPaused(), 'the source is paused while the body is full');
  const drained = once(source, 'drain');
  body.resume();
  await drained;
  source.end();
  body.destroy();
});

test('an error of the source destroys the body with it; destroying the body destroys the source', async () => {
  const source = new PassThrough();
  const body = coalescedBody(source);
  const failed = once(body, 'error');
  source.destroy(new Error('stream reset'));
  const [err] = (await failed) as [Error];
  assert.equal(err.message, 'stream reset');

  const source2 = new PassThrough();
  const body2 = coalescedBody(source2);
  body2.on('error', () => {});
  const sourceError = once(source2, 'error');
  body2.destroy(new Error('upstream gone'));
  assert.equal(((await sourceError) as [Error])[0].message, 'upstream gone');
  assert.equal(source2.destroyed, true);
});

test('a source that closes before its end fails the body instead of ending it', async () => {
  const source = new PassThrough();
  const body = coalescedBody(source);
  const failed = once(body, 'error');
  source.write('partial');
  source.destroy();
  const [err] = (await failed) as [Error];
  assert.match(err.message, /ended early/);
});
