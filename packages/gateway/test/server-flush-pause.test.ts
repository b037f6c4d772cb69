// A request that arrives on a kept-alive TLS connection while the answer
// before it is still being flushed: Node's server pauses its parser (the
// pipelining guard), and the request's body, decrypted in the same read, used
// to hit the paused parser (HPE_PAUSED) and the connection was reset. The
// gateway's server reads on (protocol's readOnWhileFlushing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { createServer as createHttpsServer } from 'node:https';
import { readOnWhileFlushing } from '@pipeops/tunnel-protocol';
import { collectLogs, testCertificates } from '@pipeops/tunnel-testkit';
import { createServer } from '../src/server.ts';

/** Larger than what the loopback socket buffers take while the client reads nothing. */
const BIG = 32 << 20;
/** Spans several TLS records, so the server decrypts the rest after the head in the same read. */
const UPLOAD = 64 << 10;

test('an upload that follows a large answer still flushing on the same TLS connection is read whole', async (t) => {
  const certs = testCertificates();
  const logs = collectLogs();
  const bigEnded = Promise.withResolvers<void>();
  const server = createServer(
    { cert: certs.cert, key: certs.key },
    {
      request(req, res, path) {
        if (path === '/big') {
          res.writeHead(200, { 'content-length': String(BIG) });
          res.end(Buffer.alloc(BIG, 0x61));
          // end() has handed every byte to the socket; the client has read none of them yet.
          bigEnded.resolve();
          return true;
        }
        if (path === '/up') {
          let n = 0;
          req.on('data', (c: Buffer) => {
            n += c.length;
          });
          req.on('end', () => res.end(`got ${String(n)}`));
          return true;
        }
        return false;
      },
      tunnelUpgrade: (_req, socket) => socket.destroy(),
    },
    logs.logger('debug'),
    { tlsHandshakeTimeoutMs: 5_000, requestHeadTimeoutMs: 5_000, maxConnections: 10 },
  );
  const clientErrors: string[] = [];
  server.on('clientError', (err: NodeJS.ErrnoException) => clientErrors.push(err.code ?? err.message));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());

  const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: certs.caCert, servername: 'localhost' });
  await once(client, 'secureConnect');
  client.pause();
  client.write('GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await bigEnded.promise;
  // The next request, head and body in one write (several TLS records), while the big answer is still queued.
  client.write(Buffer.concat([Buffer.from(`POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${String(UPLOAD)}\r\n\r\n`), Buffer.alloc(UPLOAD, 0x62)]));
  const answer = `got ${String(UPLOAD)}`;
  let received = Buffer.alloc(0);
  const errors: string[] = [];
  client.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
  client.on('data', (c: Buffer) => {
    received = Buffer.concat([received, c]);
    if (received.subarray(-answer.length).toString() === answer) client.destroy();
  });
  client.resume();
  await once(client, 'close');
  assert.deepEqual(errors, []);
  assert.deepEqual(clientErrors, []);
  const text = received.toString('latin1');
  const second = text.indexOf('HTTP/1.1', BIG);
  assert.ok(second > BIG, 'a second answer after the big one');
  assert.match(text.slice(second), new RegExp(`^HTTP/1\\.1 200 OK\\r\\n[\\s\\S]*\\r\\n\\r\\n${answer}$`));
});

test('real pipelining keeps the server pause: a request behind an answer not yet complete is not read on', async (t) => {
  const certs = testCertificates();
  const readOn: Record<string, boolean> = {};
  let slow: import('node:http').ServerResponse | undefined;
  const server = createHttpsServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    readOn[req.url ?? ''] = readOnWhileFlushing(req, res);
    if (req.url === '/slow') {
      // A large answer, not ended: the socket needs a drain when the next head is parsed.
      res.writeHead(200, { 'content-length': String(BIG + 1) });
      res.write(Buffer.alloc(BIG, 0x61));
      slow = res;
      return;
    }
    res.end('next');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: certs.caCert, servername: 'localhost' });
  await once(client, 'secureConnect');
  client.write('GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\nGET /next HTTP/1.1\r\nHost: localhost\r\n\r\n');
  let received = '';
  client.on('data', (c: Buffer) => {
    received += c.toString('latin1');
    if (received.endsWith('next')) client.destroy();
  });
  while (readOn['/next'] === undefined) await new Promise((r) => setImmediate(r));
  slow?.end('!');
  await once(client, 'close');
  assert.deepEqual(readOn, { '/slow': false, '/next': false });
  assert.ok(received.endsWith('next'), 'both answers arrive once the first is complete');
});
