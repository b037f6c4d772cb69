// The buffers an upload is gathered into on its way to the API server are
// used again once the upstream socket has written them: the pool lends and
// takes back only its own, and a real upload over TLS arrives whole while
// its chunks cycle through a handful of buffers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createSecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { Pool } from 'undici';
import { testCertificates } from '@pipeops/tunnel-testkit';
import { BODY_BUFFER_BYTES, BodyBuffers } from '../src/kube/body-buffers.ts';
import { coalescedBody } from '../src/kube/coalesced-body.ts';
import { bodyBufferConnector } from '../src/kube/upstream-socket.ts';

test('a buffer given back is lent again; a chunk the pool did not lend, or gave back already, is ignored', () => {
  const pool = new BodyBuffers(2);
  const a = pool.take();
  assert.equal(a.length, BODY_BUFFER_BYTES);
  assert.equal(pool.lent(a.subarray(10, 20)), true);
  pool.giveBack(a.subarray(0, 100));
  assert.equal(pool.lent(a), false);
  pool.giveBack(a); // twice: must not be handed to two borrowers
  const b = pool.take();
  const c = pool.take();
  assert.equal(b.buffer, a.buffer, 'the given-back buffer is reused');
  assert.notEqual(c.buffer, a.buffer, 'and only once');
  pool.giveBack(Buffer.alloc(BODY_BUFFER_BYTES)); // not the pool's
  assert.equal(pool.created, 2);
});

test('the pool keeps at most its limit of given-back buffers', () => {
  const pool = new BodyBuffers(1);
  const lent = [pool.take(), pool.take(), pool.take()];
  for (const b of lent) pool.giveBack(b);
  pool.take();
  pool.take();
  assert.equal(pool.created, 4, 'one kept, the others dropped');
});

test('an upload gathered into pooled buffers reaches an HTTPS server whole over HTTP/1.1, reusing its buffers', async (t) => {
  const certs = testCertificates();
  // Offers h2 as kube-apiserver does: the body connection must still speak HTTP/1.1.
  const server = createSecureServer({ key: certs.key, cert: certs.cert, allowHTTP1: true }, (req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
    });
    req.on('end', () => res.end(JSON.stringify({ version: req.httpVersion, bytes, sha256: hash.digest('hex') })));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const pool = new BodyBuffers();
  const dispatcher = new Pool(`https://127.0.0.1:${(server.address() as AddressInfo).port}`, {
    connect: bodyBufferConnector({ ca: certs.caCert } as Parameters<typeof bodyBufferConnector>[0], pool),
  });
  t.after(() => dispatcher.close());

  const sent = createHash('sha256');
  const source = new PassThrough({ highWaterMark: 1 << 20 });
  const rounds = 64;
  const piecesPerRound = [16_000, 40, 16_000, 70, 16_000, 300];
  const total = rounds * piecesPerRound.reduce((a, b) => a + b, 0);
  const answer = dispatcher.request({
    path: '/sink',
    method: 'PUT',
    body: coalescedBody(source, pool),
    headers: { 'content-length': String(total) },
  });
  for (let r = 0; r < rounds; r++) {
    for (const [i, n] of piecesPerRound.entries()) {
      const piece = Buffer.alloc(n, (r * 7 + i) & 0xff);
      sent.update(piece);
      source.write(piece);
    }
    await turn();
    await turn();
  }
  source.end();
  const res = await answer;
  const got = (await res.body.json()) as { version: string; bytes: number; sha256: string };
  assert.deepEqual(got, { version: '1.1', bytes: total, sha256: sent.digest('hex') });
  assert.ok(pool.created <= 4, `${pool.created} buffers for ${rounds} gathered chunks`);
});
