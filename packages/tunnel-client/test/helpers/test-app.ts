// A tiny API-server-like app served over tunnel streams by the fake gateway.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';

export interface TestApp {
  server: Server;
  /** Requests seen: method and url. */
  seen: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>;
  /** Resolves each time a streaming response is cut by the client. */
  aborted: Array<string>;
  /** Pushes one watch event to every open watch. */
  pushEvent(type: string, name: string): void;
  /** Number of open watches. */
  openWatches(): number;
}

export function createTestApp(): TestApp {
  const seen: TestApp['seen'] = [];
  const aborted: string[] = [];
  const watches = new Set<ServerResponse>();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (url.pathname === '/version') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ major: '1', minor: '99', gitVersion: 'v1.99.0-fake' }));
      return;
    }
    if (url.pathname === '/echo') {
      const hash = createHash('sha256');
      let bytes = 0;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
        if (bytes <= 1 << 20) chunks.push(c);
      });
      req.on('end', () => {
        res.writeHead(200, {
          'content-type': req.headers['content-type'] ?? 'application/octet-stream',
          'x-sha256': hash.digest('hex'),
          'x-bytes': String(bytes),
          'x-method': req.method ?? '',
        });
        res.end(bytes <= 1 << 20 ? Buffer.concat(chunks) : '');
      });
      return;
    }
    if (url.pathname === '/big') {
      // 8 MiB in 64 KiB chunks, with a sha256 header to check against.
      const chunk = Buffer.alloc(65_536, 7);
      const n = 128;
      const hash = createHash('sha256');
      for (let i = 0; i < n; i++) hash.update(chunk);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-sha256': hash.digest('hex') });
      let i = 0;
      const pump = (): void => {
        while (i < n) {
          i++;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    if (url.pathname === '/api/v1/namespaces/default/pods' && url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.write(
        `${JSON.stringify({ type: 'ADDED', object: { kind: 'Pod', metadata: { name: 'p0', resourceVersion: url.searchParams.get('resourceVersion') ?? '1' } } })}\n`,
      );
      watches.add(res);
      res.once('close', () => {
        watches.delete(res);
        if (!res.writableFinished) aborted.push(req.url ?? '');
      });
      return;
    }
    if (url.pathname === '/api/v1/namespaces/default/pods') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'PodList', items: [{ metadata: { name: 'p0' } }] }));
      return;
    }
    if (url.pathname === '/api/v1/namespaces/default/pods/p0/log') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const timer = setInterval(() => {
        n++;
        res.write(`line ${n}\n`);
        if (n === 3 && (url.searchParams.get('follow') !== 'true' || url.searchParams.get('tailLines') === '3')) {
          clearInterval(timer);
          res.end();
        }
      }, 5);
      res.once('close', () => {
        clearInterval(timer);
        if (!res.writableFinished) aborted.push(req.url ?? '');
      });
      return;
    }
    if (url.pathname === '/trailers') {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('abc');
      res.addTrailers({ 'x-checksum': 'abc-sum' });
      res.end();
      return;
    }
    res
      .writeHead(404, { 'content-type': 'application/json' })
      .end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: `${url.pathname} not found` }));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const path = new URL(req.url ?? '/', 'http://x');
    if (req.headers.upgrade?.toLowerCase() === 'websocket' && path.pathname.endsWith('/exec')) {
      // Like the API server's exec over v5/v4.channel.k8s.io: stdout (channel 1) gets the command line, then a Success status (channel 3).
      wss.handleUpgrade(req, socket, head, (ws) => {
        const command = path.searchParams.getAll('command').join(' ');
        ws.send(Buffer.concat([Buffer.from([1]), Buffer.from(`ran: ${command}\n`)]));
        ws.send(Buffer.concat([Buffer.from([3]), Buffer.from(JSON.stringify({ metadata: {}, status: 'Success' }))]), () => ws.close(1000));
      });
      return;
    }
    if (req.headers.upgrade?.toLowerCase() === 'websocket') {
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo:${String(data)}`, { binary: isBinary }));
      });
      return;
    }
    // A raw protocol (like SPDY): 101, then echo bytes upper-cased until FIN.
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    if (head.length > 0) socket.write(head.toString().toUpperCase());
    socket.on('data', (c: Buffer) => socket.write(c.toString().toUpperCase()));
    socket.on('end', () => socket.end('BYE'));
  });
  return {
    server,
    seen,
    aborted,
    pushEvent(type, name) {
      for (const w of watches) w.write(`${JSON.stringify({ type, object: { kind: 'Pod', metadata: { name } } })}\n`);
    },
    openWatches: () => watches.size,
  };
}

/** Polls `cond` until true, with a bounded deadline (no fixed sleeps as synchronisation). */
export async function until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
