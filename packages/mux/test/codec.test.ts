import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameDecoder } from '../src/decoder.ts';
import { FrameReader } from '../src/frame-reader.ts';
import { encodeDataFrame, encodeHeader, Flag, FrameType, readHeader, type FrameHeader } from '../src/frame.ts';
import { MuxError } from '../src/index.ts';
import { payload } from './helpers/io.ts';

// A deliberately naive reference codec: byte by byte, straight from spec.md "Framing".
function naiveEncode(type: number, flags: number, id: number, length: number): number[] {
  return [
    0,
    type,
    (flags >> 8) & 0xff,
    flags & 0xff,
    (id >>> 24) & 0xff,
    (id >>> 16) & 0xff,
    (id >>> 8) & 0xff,
    id & 0xff,
    (length >>> 24) & 0xff,
    (length >>> 16) & 0xff,
    (length >>> 8) & 0xff,
    length & 0xff,
  ];
}
function naiveDecode(b: number[]): FrameHeader {
  const u32 = (i: number): number => (b[i] ?? 0) * 2 ** 24 + ((b[i + 1] ?? 0) << 16) + ((b[i + 2] ?? 0) << 8) + (b[i + 3] ?? 0);
  return { version: b[0] ?? -1, type: b[1] ?? -1, flags: ((b[2] ?? 0) << 8) | (b[3] ?? 0), streamId: u32(4), length: u32(8) };
}

const samples: [number, number, number, number][] = [
  [FrameType.data, 0, 1, 0],
  [FrameType.windowUpdate, Flag.syn, 3, 786_432],
  [FrameType.windowUpdate, Flag.syn | Flag.fin, 0xffff_ffff, 0xffff_ffff],
  [FrameType.ping, Flag.ack, 0, 0x8000_0001],
  [FrameType.goAway, 0, 0, 2],
  [FrameType.data, Flag.ack | Flag.fin | Flag.rst, 0x7fff_fffe, 12],
  [FrameType.windowUpdate, 0xffff, 2, 1],
];

test('header encoding matches the naive reference codec byte for byte', () => {
  for (const [type, flags, id, len] of samples) {
    assert.deepEqual([...encodeHeader(type as 0, flags, id, len)], naiveEncode(type, flags, id, len));
  }
});

test('header decoding matches the naive reference codec', () => {
  for (const [type, flags, id, len] of samples) {
    const bytes = naiveEncode(type, flags, id, len);
    assert.deepEqual(readHeader(Buffer.from(bytes)), naiveDecode(bytes));
  }
});

function collect(): { frames: { h: FrameHeader; p: Buffer }[]; dec: FrameDecoder } {
  const frames: { h: FrameHeader; p: Buffer }[] = [];
  return { frames, dec: new FrameDecoder(1 << 20, (h, p) => frames.push({ h, p })) };
}

test('the decoder reassembles frames split at every possible point', () => {
  const wire = Buffer.concat([
    encodeDataFrame(Flag.syn, 1, Buffer.from('hello world')),
    encodeHeader(FrameType.windowUpdate, Flag.ack, 1, 1000),
    encodeDataFrame(0, 3, Buffer.alloc(0)),
    encodeHeader(FrameType.ping, Flag.syn, 0, 42),
    encodeDataFrame(Flag.fin, 1, payload(300, 7)),
  ]);
  for (let a = 0; a <= wire.length; a++) {
    for (const b of [a, Math.min(wire.length, a + 1), Math.min(wire.length, a + 13)]) {
      const { frames, dec } = collect();
      dec.push(wire.subarray(0, a));
      dec.push(wire.subarray(a, b));
      dec.push(wire.subarray(b));
      assert.equal(frames.length, 5, `split at ${a}/${b}`);
      assert.equal(frames[0]?.p.toString(), 'hello world');
      assert.equal(frames[1]?.h.length, 1000);
      assert.equal(frames[3]?.h.length, 42);
      assert.deepEqual(frames[4]?.p, payload(300, 7));
      assert.equal(dec.bufferedBytes, 0);
    }
  }
});

test('the decoder handles 10,000 frames in one chunk iteratively', () => {
  const one = encodeDataFrame(0, 5, Buffer.from('abc'));
  const { frames, dec } = collect();
  dec.push(Buffer.concat(Array.from({ length: 10_000 }, () => one)));
  assert.equal(frames.length, 10_000);
  assert.ok(frames.every((f) => f.p.toString() === 'abc' && f.h.streamId === 5));
});

test('a payload inside one received chunk is a view of it, not a copy', () => {
  const chunk = encodeDataFrame(0, 1, payload(4096));
  const { frames, dec } = collect();
  dec.push(chunk);
  assert.equal(frames[0]?.p.buffer, chunk.buffer);
});

test('a bad version, an unknown type or an oversized data frame is a PT_ERR_MUX_PROTOCOL error', () => {
  const bad = [
    Buffer.from([1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
    Buffer.from([0, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
    encodeHeader(FrameType.data, 0, 1, (1 << 20) + 1),
  ];
  for (const b of bad) {
    const { frames, dec } = collect();
    assert.throws(
      () => dec.push(b),
      (e: unknown) => e instanceof MuxError && e.code === 'PT_ERR_MUX_PROTOCOL',
    );
    dec.push(encodeHeader(FrameType.ping, 0, 0, 1));
    assert.equal(frames.length, 0, 'a failed decoder delivers nothing more');
  }
});

test('the frame reader hands a split payload on as views of the chunks it arrived in, never copied', () => {
  const body = payload(40_000, 3);
  const wire = Buffer.concat([encodeDataFrame(Flag.syn | Flag.fin, 7, body), encodeHeader(FrameType.ping, Flag.syn, 0, 9)]);
  const chunks = [wire.subarray(0, 5), wire.subarray(5, 16_389), wire.subarray(16_389, 40_012), wire.subarray(40_012)];
  const pieces: { type: number; piece: Buffer; first: boolean; last: boolean }[] = [];
  const reader = new FrameReader(1 << 20, (h, piece, first, last) => pieces.push({ type: h.type, piece, first, last }));
  for (const c of chunks) reader.push(c);
  assert.deepEqual(
    pieces.map((p) => [p.type, p.piece.length, p.first, p.last]),
    [
      [FrameType.data, 16_389 - 12, true, false],
      [FrameType.data, 40_012 - 16_389, false, true],
      [FrameType.ping, 0, true, true],
    ],
  );
  assert.deepEqual(Buffer.concat(pieces.slice(0, 2).map((p) => p.piece)), body);
  // Views: each piece shares memory with the chunk it came in (the header split across chunks 1 and 2 was the only copy).
  assert.equal(pieces[0]!.piece.buffer, chunks[1]!.buffer);
  assert.equal(pieces[0]!.piece.byteOffset, chunks[1]!.byteOffset + 7);
  assert.equal(pieces[1]!.piece.buffer, chunks[2]!.buffer);
  assert.equal(reader.bufferedBytes, 0);
});

test('the frame reader validates a header split across chunks before trusting its length', () => {
  const reader = new FrameReader(1024, () => assert.fail('nothing is delivered'));
  const h = encodeHeader(FrameType.data, 0, 1, 4096);
  reader.push(h.subarray(0, 11));
  assert.equal(reader.bufferedBytes, 11);
  assert.throws(
    () => reader.push(h.subarray(11)),
    (e: unknown) => e instanceof MuxError && e.code === 'PT_ERR_MUX_PROTOCOL',
  );
  reader.push(Buffer.alloc(64)); // stopped: ignored
});
