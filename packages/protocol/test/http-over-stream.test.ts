import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import { createSession, type Session } from '@pipeops/tunnel-mux';
import {
  HOP_BY_HOP_HEADERS,
  TunnelError,
  relayRequest,
  relayUpgrade,
  requestOverStream,
  serveHttpOverStream,
  type RelayOptions,
  type RelayResult,
} from '../src/index.ts';
import { tcpPair } from './helpers/tcp-pair.ts';

// Topology of every test: runner (node http client, real TCP) → front server (relayRequest /
// relayUpgrade) → mux stream over a real TCP socket pair → upstream app served with
// serveHttpOverStream on the far session.

interface Rig {
  port: number;
  client: Session;
  server: Session;
  upstream: http.Server;
  front: http.Server;
  /** The next relay result (in completion order). */
  result(): Promise<RelayResult>;
}

async function rig(
  t: TestContext,
  app: (req: IncomingMessage, res: ServerResponse) => void,
  relay: Partial<RelayOptions> & { open?: () => Promise<Duplex> } = {},
): Promise<Rig> {
  const tcp = await tcpPair();
  const client = createSession(tcp.near, { client: true, keepAliveIntervalMs: 0 });
  const server = createSession(tcp.far, { client: false, keepAliveIntervalMs: 0 });
  const upstream = http.createServer(app);
  server.on('stream', (s) => serveHttpOverStream(upstream, s));
  const done: RelayResult[] = [];
  const results = new EventEmitter();
  const result = async (): Promise<RelayResult> => {
    if (done.length === 0) await once(results, 'result');
    return done.shift() as RelayResult;
  };
  const { open: openOpt, ...relayOpts } = relay;
  const open = openOpt ?? (async () => client.open());
  const front = http.createServer((req, res) => {
    void relayRequest(req, res, open, { path: req.url ?? '/', ...relayOpts }).then((r) => {
      done.push(r);
      results.emit('result');
    });
  });
  front.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void relayUpgrade(req, socket, head, open, { path: req.url ?? '/', ...relayOpts }).then((r) => {
      done.push(r);
      results.emit('result');
    });
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  t.after(async () => {
    front.closeAllConnections();
    await new Promise<void>((r) => front.close(() => r()));
    client.destroy();
    server.destroy();
    await tcp.close();
  });
  return { port: (front.address() as AddressInfo).port, client, server, upstream, front, result };
}

function get(port: number, path: string, opts: http.RequestOptions = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, ...opts }, resolve);
    req.on('error', reject);
    req.end();
  });
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Deterministic pseudo-random bytes produced lazily, in 64 KiB chunks. */
function generated(bytes: number, seed: number): Readable {
  let left = bytes;
  let x = seed;
  return new Readable({
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const n = Math.min(65_536, left);
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) & 0x7fffffff;
        b[i] = x >>> 16;
      }
      left -= n;
      this.push(b);
    },
  });
}

async function sha256Of(r: Readable): Promise<{ hash: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of r) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { hash: h.digest('hex'), bytes };
}

async function waitFor(cond: () => boolean, deadlineMs = 5_000, what = 'condition'): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a chunked response reaches the runner chunk by chunk, each before the next is written', async (t) => {
  const seen = new EventEmitter();
  const r = await rig(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    let i = 0;
    const next = (): void => {
      if (i === 5) {
        res.end();
        return;
      }
      res.write(`{"type":"ADDED","n":${i}}\n`);
      const want = i++;
      // The next event is only written once the runner has seen this one: nothing may wait in a buffer.
      seen.once(`event-${want}`, next);
    };
    next();
  });
  const res = await get(r.port, '/api/v1/pods?watch=1');
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['transfer-encoding'], 'chunked');
  let text = '';
  for await (const c of res) {
    text += String(c);
    for (const line of text.split('\n').slice(0, -1)) seen.emit(`event-${(JSON.parse(line) as { n: number }).n}`);
    text = text.slice(text.lastIndexOf('\n') + 1);
  }
  const result = await r.result();
  assert.equal(result.status, 200);
  assert.equal(result.upgraded, false);
  assert.equal(result.error, undefined);
  assert.equal(result.bytesOut, 5 * '{"type":"ADDED","n":0}\n'.length);
});

test('large bodies cross both ways intact (hashes match) with flow control', async (t) => {
  const size = 6 * 1024 * 1024;
  const r = await rig(t, (req, res) => {
    void sha256Of(req).then(({ hash, bytes }) => {
      res.writeHead(200, { 'x-request-sha256': hash, 'x-request-bytes': String(bytes) });
      generated(size, 7).pipe(res);
    });
  });
  const expectedIn = await sha256Of(generated(size, 3));
  const expectedOut = await sha256Of(generated(size, 7));
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: r.port, path: '/upload', method: 'PUT', agent: false }, resolve);
    req.on('error', reject);
    generated(size, 3).pipe(req);
  });
  assert.equal(res.headers['x-request-sha256'], expectedIn.hash);
  assert.equal(res.headers['x-request-bytes'], String(size));
  assert.deepEqual(await sha256Of(res), expectedOut);
  const result = await r.result();
  assert.equal(result.bytesIn, size);
  assert.equal(result.bytesOut, size);
});

test('HEAD, 204 and 304 answers carry no body and keep their headers', async (t) => {
  const r = await rig(t, (req, res) => {
    if (req.url === '/head') {
      res.writeHead(200, { 'content-length': '1234', etag: '"v1"' });
      res.end();
      return;
    }
    if (req.url === '/204') {
      res.writeHead(204, { 'x-done': 'yes' });
      res.end();
      return;
    }
    res.writeHead(304, { etag: '"v1"' });
    res.end();
  });
  const head = await get(r.port, '/head', { method: 'HEAD' });
  assert.equal(head.statusCode, 200);
  assert.equal(head.headers['content-length'], '1234');
  assert.equal((await readAll(head)).length, 0);
  const nc = await get(r.port, '/204');
  assert.equal(nc.statusCode, 204);
  assert.equal(nc.headers['x-done'], 'yes');
  assert.equal((await readAll(nc)).length, 0);
  const nm = await get(r.port, '/304', { headers: { 'if-none-match': '"v1"' } });
  assert.equal(nm.statusCode, 304);
  assert.equal(nm.headers.etag, '"v1"');
  assert.equal((await readAll(nm)).length, 0);
});

test('repeated headers survive both ways; hop-by-hop and dropped headers do not; set headers are added', async (t) => {
  let upstreamRaw: string[] = [];
  const r = await rig(
    t,
    (req, res) => {
      upstreamRaw = req.rawHeaders;
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.setHeader('X-Multi', ['one', 'two']);
      res.setHeader('Keep-Alive', 'timeout=99');
      res.setHeader('X-Hop', 'secret');
      res.setHeader('Connection', 'x-hop');
      res.end('ok');
    },
    { dropHeaders: ['Authorization'], setHeaders: { 'x-pipeops-request-id': 'req-1' }, responseHeaders: { 'x-pipeops-request-id': 'req-1' } },
  );
  const res = await get(r.port, '/x', {
    headers: [
      'Host',
      'front',
      'X-Multi',
      'a',
      'X-Multi',
      'b',
      'Authorization',
      'Bearer runner-secret',
      'Proxy-Authorization',
      'Basic x',
      'Connection',
      'x-private',
      'X-Private',
      'p',
      'TE',
      'trailers',
      'x-pipeops-request-id',
      'forged',
    ] as unknown as http.OutgoingHttpHeaders,
  });
  assert.equal(String(await readAll(res)), 'ok');
  const lower = upstreamRaw.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
  const values = (name: string): string[] => upstreamRaw.filter((_, i) => i % 2 === 1 && upstreamRaw[i - 1]?.toLowerCase() === name);
  assert.deepEqual(values('x-multi'), ['a', 'b']);
  for (const gone of ['authorization', 'proxy-authorization', 'x-private', 'te']) assert.ok(!lower.includes(gone), `${gone} forwarded`);
  assert.deepEqual(values('x-pipeops-request-id'), ['req-1']);
  assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
  const multi = res.rawHeaders.filter((_, i) => i % 2 === 1 && res.rawHeaders[i - 1]?.toLowerCase() === 'x-multi');
  assert.deepEqual(multi, ['one', 'two']);
  assert.notEqual(res.headers['keep-alive'], 'timeout=99');
  assert.equal(res.headers['x-hop'], undefined);
  assert.equal(res.headers['x-pipeops-request-id'], 'req-1');
  assert.ok(HOP_BY_HOP_HEADERS.has('transfer-encoding'));
});

test('trailers from upstream reach the runner', async (t) => {
  const r = await rig(t, (_req, res) => {
    res.writeHead(200, { Trailer: 'x-checksum' });
    res.write('part one;');
    res.write('part two');
    res.addTrailers({ 'x-checksum': 'abc123' });
    res.end();
  });
  const res = await get(r.port, '/t');
  assert.equal(String(await readAll(res)), 'part one;part two');
  assert.equal(res.trailers['x-checksum'], 'abc123');
});

test('an upgrade becomes a raw pipe both ways, with half-close in each direction', async (t) => {
  const r = await rig(t, () => {
    throw new Error('not a plain request');
  });
  r.upstream.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    assert.equal(req.headers.upgrade, 'SPDY/3.1');
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n');
    const got: Buffer[] = [head];
    socket.on('data', (c: Buffer) => {
      got.push(c);
      socket.write(Buffer.concat([Buffer.from('echo:'), c]));
    });
    socket.on('end', () => {
      // The runner half-closed; this direction still works.
      socket.end(`bye after ${Buffer.concat(got).length} bytes`);
    });
  });
  const req = http.request({ host: '127.0.0.1', port: r.port, path: '/exec', agent: false, headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1' } });
  req.end();
  const [res, socket] = (await once(req, 'upgrade')) as [IncomingMessage, net.Socket, Buffer];
  assert.equal(res.statusCode, 101);
  assert.equal(res.headers['x-stream-protocol-version'], 'v4.channel.k8s.io');
  let received = '';
  socket.on('data', (c: Buffer) => {
    received += c.toString('latin1');
  });
  const bin = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
  socket.write(bin);
  await waitFor(() => received.length >= 5 + bin.length, 5_000, 'echo');
  assert.deepEqual(Buffer.from(received, 'latin1'), Buffer.concat([Buffer.from('echo:'), bin]));
  socket.end();
  await once(socket, 'end');
  assert.ok(received.endsWith(`bye after ${bin.length} bytes`));
  const result = await r.result();
  assert.equal(result.upgraded, true);
  assert.equal(result.status, 101);
  assert.equal(result.bytesIn, bin.length);
});

test('a runner that goes away mid-response aborts the upstream exchange', async (t) => {
  const upstreamClosed = new EventEmitter();
  const r = await rig(t, (_req, res) => {
    res.writeHead(200);
    res.write('first');
    res.on('close', () => upstreamClosed.emit('closed', res.writableFinished));
  });
  const res = await get(r.port, '/watch');
  await once(res, 'data');
  const closed = once(upstreamClosed, 'closed');
  res.destroy();
  const [finished] = await closed;
  assert.equal(finished, false);
  const result = await r.result();
  assert.ok(result.error instanceof Error);
});

test('an upstream that fails mid-response cuts the runner response short', async (t) => {
  const seen = new EventEmitter();
  const r = await rig(t, (req, res) => {
    res.writeHead(200);
    res.write('partial');
    seen.once('partial', () => req.socket.destroy());
  });
  const res = await get(r.port, '/logs');
  assert.equal(res.statusCode, 200);
  let got = '';
  res.on('data', (c: Buffer) => {
    got += String(c);
    seen.emit('partial');
  });
  const [err] = await once(res, 'error');
  assert.match(String(err), /aborted/);
  assert.equal(got, 'partial');
  assert.equal(res.complete, false);
  const result = await r.result();
  assert.equal(result.status, 200);
  assert.ok(result.error instanceof Error);
});

test('an upstream that fails right after its head is answered 502 when nothing was sent yet', async (t) => {
  const r = await rig(t, (req, res) => {
    res.writeHead(200);
    res.write('partial');
    setImmediate(() => req.socket.destroy());
  });
  const res = await get(r.port, '/logs');
  // Either the 502 (the reset overtook the relay) or a cut-short 200: never a clean 200.
  if (res.statusCode === 502) assert.match(String(await readAll(res)), /cut short/);
  else await assert.rejects(readAll(res), /aborted|ECONNRESET|closed/i);
  assert.ok((await r.result()).error instanceof Error);
});

test('an open() failure with a status is answered through errorResponse', async (t) => {
  const r = await rig(t, () => {}, {
    open: async () => {
      throw new TunnelError('PT_ERR_CLUSTER_NOT_CONNECTED', 'cluster c9 is not connected');
    },
    errorResponse: (status, reason, message) => ({ contentType: 'application/json', body: JSON.stringify({ status, reason, message }) }),
    responseHeaders: { 'x-pipeops-request-id': 'rid' },
  });
  const res = await get(r.port, '/version');
  assert.equal(res.statusCode, 503);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['x-pipeops-request-id'], 'rid');
  assert.deepEqual(JSON.parse(String(await readAll(res))), { status: 503, reason: 'ServiceUnavailable', message: 'cluster c9 is not connected' });
});

test('no response head within headTimeoutMs is a 504, and the stream is reset', async (t) => {
  let upstreamRes: ServerResponse | undefined;
  const r = await rig(
    t,
    (_req, res) => {
      upstreamRes = res;
    },
    { headTimeoutMs: 150 },
  );
  const started = Date.now();
  const res = await get(r.port, '/slow');
  assert.equal(res.statusCode, 504);
  assert.ok(Date.now() - started >= 140);
  assert.match(String(await readAll(res)), /did not answer within 150 ms/);
  await waitFor(() => upstreamRes?.destroyed === true, 5_000, 'upstream exchange torn down');
});

test('an upgrade refused upstream is written back as a plain response', async (t) => {
  const r = await rig(t, (_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end('{"kind":"Status","code":403}');
  });
  r.upstream.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
    const body = '{"kind":"Status","code":403}';
    socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  });
  const req = http.request({ host: '127.0.0.1', port: r.port, path: '/exec', agent: false, headers: { Connection: 'Upgrade', Upgrade: 'websocket' } });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  assert.equal(res.statusCode, 403);
  assert.equal(String(await readAll(res)), '{"kind":"Status","code":403}');
});

test('requestOverStream: aborting the signal after the head resets the stream', async (t) => {
  const r = await rig(t, (_req, res) => {
    res.writeHead(200);
    res.write('x');
  });
  const stream = r.client.open();
  const ac = new AbortController();
  const answer = await requestOverStream(stream, { method: 'GET', path: '/', headers: {}, signal: ac.signal });
  assert.equal(answer.upgraded, false);
  assert.equal(answer.response.statusCode, 200);
  ac.abort();
  await waitFor(() => stream.destroyed, 2_000, 'stream destroyed');
  await waitFor(() => r.server.numStreams === 0, 2_000, 'far side reset');
});

test('requestOverStream sends a Buffer body with its length and keeps repeated headers', async (t) => {
  let seen: { len?: string | undefined; body: string; multi: string[] } = { body: '', multi: [] };
  const r = await rig(t, (req, res) => {
    void readAll(req).then((b) => {
      seen = { len: req.headers['content-length'], body: String(b), multi: req.headersDistinct['x-a'] ?? [] };
      res.end('done');
    });
  });
  const answer = await requestOverStream(r.client.open(), { method: 'POST', path: '/p', headers: { 'x-a': ['1', '2'] }, body: Buffer.from('hello') });
  assert.equal(answer.upgraded, false);
  assert.equal(String(await readAll(answer.response)), 'done');
  assert.deepEqual(seen, { len: '5', body: 'hello', multi: ['1', '2'] });
});

test('a runner that goes away before any head resets the stream and is recorded as 499', async (t) => {
  const arrived = new EventEmitter();
  const r = await rig(t, (_req, res) => {
    arrived.emit('request', res);
  });
  const req = http.request({ host: '127.0.0.1', port: r.port, path: '/hang', agent: false });
  req.on('error', () => {
    /* we abort it */
  });
  req.end();
  const [upstreamRes] = (await once(arrived, 'request')) as [ServerResponse];
  const upstreamClosed = once(upstreamRes, 'close');
  req.destroy();
  await upstreamClosed;
  assert.equal(upstreamRes.writableFinished, false);
  const result = await r.result();
  assert.equal(result.status, 499);
  assert.ok(result.error instanceof Error);
});
