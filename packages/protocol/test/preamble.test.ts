import { test } from 'node:test';
import assert from 'node:assert/strict';
import { duplexPair, type Duplex } from 'node:stream';
import { text } from 'node:stream/consumers';
import { encodePreamble, readPreamble, TunnelError, type StreamPreamble } from '../src/index.ts';

function pair(t: { after(fn: () => void): void }): [Duplex, Duplex] {
  const [a, b] = duplexPair();
  t.after(() => {
    a.destroy();
    b.destroy();
  });
  return [a, b];
}

const preamble: StreamPreamble = { v: 1, kind: 'http', requestId: 'req-1', runnerId: 'r1', cluster: 'c1' };

test('a preamble written in one chunk with its payload is read back and the payload stays intact', async (t) => {
  const [a, b] = pair(t);
  a.end(Buffer.concat([encodePreamble(preamble), Buffer.from('GET /version HTTP/1.1\r\n\r\n')]));
  assert.deepEqual(await readPreamble(b), preamble);
  assert.equal(await text(b), 'GET /version HTTP/1.1\r\n\r\n');
});

test('a preamble dribbled one byte at a time is read back and the following bytes are not lost', async (t) => {
  const [a, b] = pair(t);
  const bytes = Buffer.concat([encodePreamble({ v: 1, kind: 'ping', requestId: 'x' }), Buffer.from('payload-bytes')]);
  const reading = readPreamble(b);
  for (const byte of bytes) a.write(Buffer.from([byte]));
  a.end();
  assert.deepEqual(await reading, { v: 1, kind: 'ping', requestId: 'x' });
  assert.equal(await text(b), 'payload-bytes');
});

test('a preamble without a newline within maxBytes is rejected as too large', async (t) => {
  const [a, b] = pair(t);
  a.write(Buffer.alloc(200, 0x41));
  await assert.rejects(readPreamble(b, 100), (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_PREAMBLE_TOO_LARGE' && err.status === 400);
});

test('malformed preambles are rejected as invalid, naming the problem', async (t) => {
  const cases = [
    'not json',
    '[]',
    '{"v":2,"kind":"http","requestId":"a"}',
    '{"v":1,"kind":"http","requestId":7}',
    '{"v":1,"kind":"http","requestId":"a","runnerId":1}',
  ];
  for (const line of cases) {
    const [a, b] = pair(t);
    a.write(`${line}\n`);
    await assert.rejects(readPreamble(b), (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_PREAMBLE_INVALID', line);
  }
});

test('a preamble of an unknown kind is rejected with its own code so the agent can answer with RST', async (t) => {
  const [a, b] = pair(t);
  a.write('{"v":1,"kind":"teleport","requestId":"a"}\n');
  await assert.rejects(readPreamble(b), (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_PREAMBLE_UNKNOWN_KIND');
});

test('a stream that ends before the preamble newline is rejected as invalid', async (t) => {
  const [a, b] = pair(t);
  a.end('{"v":1');
  await assert.rejects(readPreamble(b), (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_PREAMBLE_INVALID');
});
