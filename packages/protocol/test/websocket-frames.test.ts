import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TunnelError } from '../src/index.ts';
import { encodeWsHeader, unmask, WsFrameReader, WsOpcode } from '../src/websocket-frames.ts';

interface Seen {
  data: Buffer[];
  control: Buffer[];
  text: number;
}

function reader(expectMasked: boolean): { r: WsFrameReader; seen: Seen } {
  const seen: Seen = { data: [], control: [], text: 0 };
  const r = new WsFrameReader(expectMasked, {
    data: (p) => seen.data.push(Buffer.from(p)),
    control: (raw) => seen.control.push(Buffer.from(raw)),
    text: () => {
      seen.text++;
    },
  });
  return { r, seen };
}

/** One frame as a peer would send it: `fin`, `opcode`, payload masked with `key` when given. */
function frame(opcode: number, payload: Buffer, o: { key?: Buffer; fin?: boolean } = {}): Buffer {
  const h = encodeWsHeader(opcode, payload.length, o.key);
  if (o.fin === false) h[0] = h[0]! & 0x7f;
  const p = Buffer.from(payload);
  if (o.key !== undefined) unmask(p, o.key, 0);
  return Buffer.concat([h, p]);
}

test('frames split at every possible point give the same payload bytes and control frames', () => {
  const key = Buffer.from([1, 2, 3, 4]);
  const a = randomBytes(200);
  const b = randomBytes(70_000);
  const wire = Buffer.concat([
    frame(WsOpcode.binary, a, { key, fin: false }),
    frame(WsOpcode.ping, Buffer.from('p'), { key }),
    frame(WsOpcode.continuation, b, { key }),
    frame(WsOpcode.binary, Buffer.alloc(0), { key }),
    frame(WsOpcode.close, Buffer.from([0x03, 0xe8]), { key }),
  ]);
  for (const at of [1, 2, 3, 7, 13, 206, 208, 70_000, wire.length - 1]) {
    const { r, seen } = reader(true);
    const copy = Buffer.from(wire); // unmasking works in place, on the chunks as received
    r.push(copy.subarray(0, at));
    r.push(copy.subarray(at));
    assert.ok(Buffer.concat(seen.data).equals(Buffer.concat([a, b])), `split at ${at}`);
    assert.deepEqual(
      seen.control.map((c) => c[0]! & 0x0f),
      [WsOpcode.ping, WsOpcode.close],
      `split at ${at}`,
    );
    // control frames are handed on exactly as received, still masked, for ws's receiver
    assert.deepEqual(seen.control[0], frame(WsOpcode.ping, Buffer.from('p'), { key }));
  }
});

test('an all-zero mask key is read without touching the payload, which arrives as views of the chunk', () => {
  const payload = randomBytes(1000);
  const wire = frame(WsOpcode.binary, payload, { key: Buffer.alloc(4) });
  const pieces: Buffer[] = [];
  new WsFrameReader(true, { data: (p) => pieces.push(p), control: () => {}, text: () => {} }).push(wire);
  assert.equal(pieces.length, 1);
  assert.equal(pieces[0]!.buffer, wire.buffer);
  assert.deepEqual(pieces[0], payload);
});

test('a text frame is reported and nothing after it is read', () => {
  const { r, seen } = reader(false);
  r.push(Buffer.concat([frame(WsOpcode.text, Buffer.from('hi')), frame(WsOpcode.binary, Buffer.from('later'))]));
  assert.equal(seen.text, 1);
  assert.equal(seen.data.length, 0);
});

const violations: [string, boolean, Buffer][] = [
  ['reserved bits', false, Buffer.from([0x80 | 0x40 | WsOpcode.binary, 0])],
  ['a reserved opcode', false, Buffer.from([0x80 | 0x3, 0])],
  ['a reserved control opcode', false, Buffer.from([0x80 | 0xb, 0])],
  ['an unmasked frame to a server', true, frame(WsOpcode.binary, Buffer.from('x'))],
  ['a masked frame to a client', false, frame(WsOpcode.binary, Buffer.from('x'), { key: Buffer.alloc(4) })],
  ['a continuation outside a message', false, frame(WsOpcode.continuation, Buffer.from('x'))],
  [
    'a new message inside a fragmented one',
    false,
    Buffer.concat([frame(WsOpcode.binary, Buffer.from('a'), { fin: false }), frame(WsOpcode.binary, Buffer.from('b'))]),
  ],
  ['a fragmented control frame', false, frame(WsOpcode.ping, Buffer.from('x'), { fin: false })],
  ['an oversized control frame', false, frame(WsOpcode.ping, Buffer.alloc(126))],
  ['a length beyond 2^53 - 1', false, Buffer.from([0x82, 127, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])],
];
for (const [what, expectMasked, wire] of violations) {
  test(`${what} is a PT_ERR_WS_PROTOCOL violation, and the reader ignores what follows`, () => {
    const { r, seen } = reader(expectMasked);
    assert.throws(
      () => r.push(wire),
      (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_WS_PROTOCOL',
    );
    const before = seen.data.length;
    r.push(frame(WsOpcode.binary, Buffer.from('after'), expectMasked ? { key: Buffer.alloc(4) } : {}));
    assert.equal(seen.data.length, before);
  });
}

test('headers encode the three length forms and the mask bit as RFC 6455 §5.2 lays them out', () => {
  assert.deepEqual([...encodeWsHeader(WsOpcode.binary, 125)], [0x82, 125]);
  assert.deepEqual([...encodeWsHeader(WsOpcode.binary, 126)], [0x82, 126, 0, 126]);
  assert.deepEqual([...encodeWsHeader(WsOpcode.binary, 65_536, Buffer.from([9, 8, 7, 6]))], [0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 9, 8, 7, 6]);
});
