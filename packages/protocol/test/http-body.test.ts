import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { HttpBodyError, RequestBody, requestBodyFraming, type BodyFraming } from '../src/index.ts';

/** Reads `body` to its end: its bytes, or the error it failed with. */
async function collect(body: RequestBody): Promise<{ bytes: Buffer } | { error: unknown }> {
  const parts: Buffer[] = [];
  try {
    for await (const c of body) parts.push(c as Buffer);
    return { bytes: Buffer.concat(parts) };
  } catch (error) {
    return { error };
  }
}

/** A byte stream that delivers `wire` as the given pieces, one read each. */
function source(pieces: Buffer[], end = true): PassThrough {
  const s = new PassThrough();
  for (const p of pieces) s.write(p);
  if (end) s.end();
  return s;
}

test('request body framing follows RFC 9112: length, chunked or none, and smuggling shapes are refused', () => {
  const cases: Array<[string[], boolean, BodyFraming['kind'], number?]> = [
    [[], false, 'none'],
    [['Content-Length', '0'], false, 'none'],
    [['content-length', '12'], false, 'length'],
    [['Transfer-Encoding', 'chunked'], false, 'chunked'],
    [['Transfer-Encoding', 'Chunked '], false, 'chunked'],
    [['Transfer-Encoding', 'chunked', 'Content-Length', '5'], false, 'refused', 400],
    [['Content-Length', '5', 'Content-Length', '5'], false, 'refused', 400],
    [['Content-Length', '5, 5'], false, 'refused', 400],
    [['Content-Length', '-1'], false, 'refused', 400],
    [['Content-Length', '0x10'], false, 'refused', 400],
    [['Transfer-Encoding', 'gzip, chunked'], false, 'refused', 501],
    [['Transfer-Encoding', 'gzip', 'Transfer-Encoding', 'chunked'], false, 'refused', 501],
    [['Transfer-Encoding', 'chunked'], true, 'refused', 400],
  ];
  for (const [raw, http10, kind, status] of cases) {
    const f = requestBodyFraming(raw, http10);
    assert.equal(f.kind, kind, `${JSON.stringify(raw)} http10=${String(http10)}`);
    if (f.kind === 'refused') assert.equal(f.status, status);
    if (f.kind === 'length') assert.equal(f.length, 12);
  }
});

test('a Content-Length body is exactly its bytes however the reads fall, and what follows it goes to onComplete', async () => {
  const wire = Buffer.from('hello, world! GET / HTTP/1.1\r\n');
  let excess: Buffer | undefined;
  const s = source([wire.subarray(3, 5), wire.subarray(5, 9), wire.subarray(9)]);
  const body = new RequestBody(
    s,
    wire.subarray(0, 3),
    { kind: 'length', length: 13 },
    {
      onComplete: (b) => {
        excess = b;
      },
    },
  );
  const got = await collect(body);
  assert.ok('bytes' in got);
  assert.equal(String(got.bytes), 'hello, world!');
  assert.equal(String(excess), ' GET / HTTP/1.1\r\n');
  assert.ok(s.isPaused(), 'the source is left paused for the next reader');
});

test('a chunked body decodes with its trailers wherever the reads split it', async () => {
  const wire = Buffer.from(`5;ext=1\r\nhello\r\n1A\r\n${'x'.repeat(26)}\r\n0\r\nX-Sum: abc\r\nX-Two:  2 \r\n\r\n`, 'latin1');
  for (let cut = 0; cut <= wire.length; cut++) {
    let excess: Buffer | undefined;
    const body = new RequestBody(
      source([wire.subarray(cut)]),
      wire.subarray(0, cut),
      { kind: 'chunked' },
      {
        onComplete: (b) => {
          excess = b;
        },
      },
    );
    const got = await collect(body);
    assert.ok('bytes' in got, `cut at ${cut}: ${'error' in got ? String(got.error) : ''}`);
    assert.equal(String(got.bytes), `hello${'x'.repeat(26)}`, `cut at ${cut}`);
    assert.deepEqual(body.rawTrailers, ['X-Sum', 'abc', 'X-Two', '2'], `cut at ${cut}`);
    assert.equal(excess?.length, 0);
  }
  // One byte per read.
  const body = new RequestBody(source([...wire].map((b) => Buffer.from([b]))), Buffer.alloc(0), { kind: 'chunked' });
  const got = await collect(body);
  assert.ok('bytes' in got);
  assert.equal(got.bytes.length, 31);
});

test('a malformed chunked body, one cut short, or oversized trailers fail with PT_ERR_HTTP_BODY_INVALID', async () => {
  const bad: Array<[string, RegExp]> = [
    ['zz\r\nhello\r\n0\r\n\r\n', /chunk-size/],
    ['5\r\nhelloXY0\r\n\r\n', /CRLF after chunk data/],
    ['5\rhello\r\n0\r\n\r\n', /bare CR/],
    ['5\nhello\r\n0\r\n\r\n', /chunk-size/],
    ['1234567890123\r\n', /chunk-size/],
    ['0\r\nbad trailer\r\n\r\n', /trailer field/],
    [`0\r\nX-Big: ${'y'.repeat(200)}\r\n\r\n`, /trailers too large/],
    ['5\r\nhel', /ended early/],
  ];
  for (const [text, why] of bad) {
    // In one read, and in two split at every offset (a CR may end one read and its line go on in the next).
    const wire = Buffer.from(text);
    for (let cut = 0; cut <= wire.length; cut++) {
      const body = new RequestBody(source([wire.subarray(0, cut), wire.subarray(cut)]), Buffer.alloc(0), { kind: 'chunked' }, { maxLineBytes: 100 });
      const got = await collect(body);
      assert.ok('error' in got, `${text} cut at ${cut}`);
      assert.ok(got.error instanceof HttpBodyError, text);
      assert.equal(got.error.code, 'PT_ERR_HTTP_BODY_INVALID');
      assert.equal(got.error.status, 400);
      assert.match(got.error.message, why, `${text} cut at ${cut}`);
    }
  }
  const short = new RequestBody(source([Buffer.from('abc')]), Buffer.alloc(0), { kind: 'length', length: 10 });
  const got = await collect(short);
  assert.ok('error' in got && got.error instanceof HttpBodyError);
});

test('a body nobody reads stops reading its source, and reading it resumes the source', async () => {
  const s = new PassThrough({ highWaterMark: 16 * 1024 });
  const total = 4 * 1024 * 1024;
  const body = new RequestBody(s, Buffer.alloc(0), { kind: 'length', length: total });
  let written = 0;
  const piece = Buffer.alloc(64 * 1024, 7);
  while (written < total && s.write(piece)) written += piece.length;
  written += piece.length;
  body.resume();
  body.pause();
  await new Promise((r) => setImmediate(r));
  assert.ok(s.isPaused(), 'the source is paused while the body is not read');
  assert.ok(body.readableLength < total, 'the body buffers less than all of it');
  let got = 0;
  body.on('data', (c: Buffer) => {
    got += c.length;
  });
  const ended = once(body, 'end');
  body.resume();
  while (written < total) {
    if (!s.write(piece)) await once(s, 'drain');
    written += piece.length;
  }
  await ended;
  assert.equal(got, total);
});
