// Property-based fuzzing (fast-check) of every parser that takes bytes or
// text from the other side of a trust boundary: yamux frames (the reader and
// a whole session's state machine), stream preambles, control messages and
// HTTP heads here; the /ws/k8s JSON messages and the tokens file in
// packages/gateway/test/fuzz.test.ts. The property is the
// same everywhere: any input either parses or is refused with a clean coded
// error (`PT_ERR_*`); nothing throws anything else, nothing hangs, and
// nothing is held beyond its bound.
//
// FUZZ_RUNS inputs per target (default 2,000: the CI mode); `pnpm fuzz`
// runs 1,000,000 each. A failure prints fast-check's seed and path: replay
// it with FUZZ_SEED and FUZZ_PATH, then add the input to the corpus below.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex, PassThrough } from 'node:stream';
import fc from 'fast-check';
import { createSession, HEADER_BYTES } from '@pipeops/tunnel-mux';
import { FrameDecoder } from '@pipeops/tunnel-mux';
import { parseControlMessage, parsePreamble, parseRequestHead, parseResponseHead, readHead } from '@pipeops/tunnel-protocol';
import { FUZZ_RUNS as RUNS, fuzzParameters as params, isCodedError } from '@pipeops/tunnel-testkit';

/** `text` split into 1–8 pieces at random points. */
const chunked = (bytes: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer[]> =>
  fc.tuple(bytes, fc.array(fc.nat(), { maxLength: 7 })).map(([b, cuts]) => {
    const buf = Buffer.from(b);
    const points = [...new Set(cuts.map((c) => (buf.length === 0 ? 0 : c % buf.length)))].sort((x, y) => x - y);
    const out: Buffer[] = [];
    let from = 0;
    for (const p of points) {
      out.push(buf.subarray(from, p));
      from = p;
    }
    out.push(buf.subarray(from));
    return out;
  });

/** One yamux frame from the grammar (any type, flags, stream id and length field; a payload up to 64 bytes). */
const frame = fc
  .record({
    version: fc.oneof({ weight: 20, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 255 }) }),
    type: fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.integer({ min: 4, max: 255 }) }),
    flags: fc.oneof(fc.constantFrom(0, 1, 2, 4, 8, 3, 5, 6), fc.integer({ min: 0, max: 0xffff })),
    streamId: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffffffff })),
    length: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 0xffffffff })),
    payload: fc.uint8Array({ maxLength: 64 }),
  })
  .map((f) => {
    const h = Buffer.alloc(HEADER_BYTES);
    h.writeUInt8(f.version, 0);
    h.writeUInt8(f.type, 1);
    h.writeUInt16BE(f.flags, 2);
    h.writeUInt32BE(f.streamId, 4);
    // Data frames carry as many bytes as their length says (when small); other types' length is a value.
    const body = f.type === 0 && f.length <= 64 ? Buffer.concat([Buffer.from(f.payload), Buffer.alloc(64)]).subarray(0, f.length) : Buffer.alloc(0);
    h.writeUInt32BE(f.type === 0 && f.length <= 64 ? body.length : f.length, 8);
    return Buffer.concat([h, body]);
  });

test('yamux frames: any bytes in any chunking are decoded or refused with PT_ERR_MUX_PROTOCOL, and never more than a header is held', () => {
  fc.assert(
    fc.property(
      chunked(
        fc.oneof(
          fc.uint8Array({ maxLength: 512 }),
          fc.array(frame, { maxLength: 12 }).map((fs) => new Uint8Array(Buffer.concat(fs))),
        ),
      ),
      (pieces) => {
        const decoder = new FrameDecoder(64 * 1024, () => {});
        try {
          for (const p of pieces) {
            decoder.push(p);
            assert.ok(decoder.bufferedBytes <= HEADER_BYTES - 1 + 64 * 1024, 'bounded');
          }
        } catch (err) {
          assert.ok(isCodedError(err, 'PT_ERR_MUX_PROTOCOL'), `not a clean refusal: ${String(err)}`);
        }
      },
    ),
    params(),
  );
});

/** A transport whose readable side the test feeds; what the session writes is drained and dropped. */
function feedTransport(): { transport: Duplex; feed: PassThrough } {
  const feed = new PassThrough();
  const transport = new Duplex({
    read() {},
    write(_chunk, _enc, cb) {
      cb();
    },
    final(cb) {
      cb();
    },
  });
  feed.on('data', (c: Buffer) => transport.push(c));
  feed.on('end', () => transport.push(null));
  return { transport, feed };
}

test('a yamux session fed any frame sequence serves it or closes with a mux error code, and always closes when its transport ends', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(frame, { maxLength: 24 }), fc.boolean(), async (frames, client) => {
      const { transport, feed } = feedTransport();
      const session = createSession(transport, { client, keepAliveIntervalMs: 0 });
      session.on('error', () => {});
      session.on('stream', (s) => {
        s.on('error', () => {});
        s.resume();
      });
      const closed = new Promise<void>((resolve) => {
        if (session.isClosed) resolve();
        else session.once('close', () => resolve());
      });
      for (const f of frames) feed.write(f);
      feed.end();
      await closed;
      const e = session.closeError as { code?: string } | undefined;
      assert.ok(e === undefined || (typeof e.code === 'string' && e.code.startsWith('PT_ERR_MUX_')), `closed by ${String(e)}`);
    }),
    params(RUNS / 10),
  );
});

test('stream preambles: any line parses or is refused with a PT_ERR_PREAMBLE_* code', () => {
  const line = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.json({ maxDepth: 3 }),
    fc
      .record(
        { v: fc.oneof(fc.constant(1), fc.anything()), kind: fc.oneof(fc.constantFrom('http', 'ping', 'tcp'), fc.string()), requestId: fc.anything() },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o) ?? ''),
  );
  fc.assert(
    fc.property(line, (l) => {
      try {
        const p = parsePreamble(l);
        assert.equal(typeof p.kind, 'string');
      } catch (err) {
        assert.ok(isCodedError(err, 'PT_ERR_PREAMBLE_'), `not a clean refusal of ${JSON.stringify(l)}: ${String(err)}`);
      }
    }),
    params(),
  );
});

test('control messages: any line parses to a typed message or is refused with PT_ERR_CONTROL_INVALID', () => {
  const types = fc.constantFrom('hello', 'welcome', 'status', 'reconnect', 'error', 'other');
  const line = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.json({ maxDepth: 4 }),
    fc
      .tuple(
        types,
        fc.dictionary(
          fc.constantFrom(
            'agentId',
            'name',
            'clusterName',
            'version',
            'labels',
            'protocolVersion',
            'sessionId',
            'gatewayVersion',
            'code',
            'message',
            'reason',
            'replacedBy',
            'policy',
            'at',
            'apiServer',
          ),
          fc.anything(),
        ),
      )
      .map(([type, rest]) => JSON.stringify({ ...rest, type }) ?? ''),
  );
  fc.assert(
    fc.property(line, (l) => {
      try {
        const m = parseControlMessage(l);
        assert.ok(['hello', 'welcome', 'status', 'reconnect', 'error'].includes(m.type));
      } catch (err) {
        assert.ok(isCodedError(err, 'PT_ERR_CONTROL_INVALID'), `not a clean refusal of ${JSON.stringify(l)}: ${String(err)}`);
      }
    }),
    params(),
  );
});

test('HTTP heads: any text parses or is refused with undefined, and any byte stream read as a head resolves within its limit or rejects with PT_ERR_HTTP_HEAD', async () => {
  const headText = fc.oneof(
    fc.string({ maxLength: 400 }),
    fc
      .tuple(
        fc.constantFrom('GET', 'POST', 'PUT', 'CONNECT', 'G ET', ''),
        fc.string({ maxLength: 40 }),
        fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'XX'),
        fc.array(fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 })), { maxLength: 6 }),
      )
      .map(([m, t, v, hs]) => [`${m} ${t} ${v}`, ...hs.map(([k, val]) => `${k}: ${val}`)].join('\r\n')),
  );
  fc.assert(
    fc.property(headText, (h) => {
      parseRequestHead(h);
      parseResponseHead(h);
    }),
    params(),
  );
  await fc.assert(
    fc.asyncProperty(chunked(fc.uint8Array({ maxLength: 600 })), fc.integer({ min: 16, max: 512 }), async (pieces, limit) => {
      const s = new PassThrough();
      const read = readHead(s, limit);
      for (const p of pieces) s.write(p);
      s.end();
      try {
        const { head } = await read;
        assert.ok(Buffer.byteLength(head, 'latin1') <= limit + 4, 'within the limit');
      } catch (err) {
        assert.ok(isCodedError(err), `not a clean refusal: ${String(err)}`);
      }
    }),
    params(RUNS / 4),
  );
});
