// A server that must never be reached: it records every TCP connection (plain
// HTTP or TLS, on one port) before reading a byte, so "no request ever reaches
// a second local server" is `hits.length === 0`, whatever was sent.
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { testCertificates } from './certificates.ts';

/** One connection the canary saw. */
export interface CanaryHit {
  /** `Date.now()` when accepted. */
  at: number;
  remotePort: number | undefined;
  /** The first byte was a TLS handshake record (set once a byte arrived). */
  tls?: boolean;
}

/** A running canary. */
export interface CanaryServer {
  /** `http://127.0.0.1:<port>` (the same port speaks HTTPS, with {@link testCertificates}`()`). */
  readonly url: string;
  /** `https://127.0.0.1:<port>` */
  readonly httpsUrl: string;
  readonly port: number;
  /** Every connection, in order. */
  readonly hits: CanaryHit[];
  close(): Promise<void>;
}

// A generic Duplex over the socket, replaying the first chunk: http/https
// servers given a real net.Socket read its handle directly and would miss it.
function replaying(socket: Socket, first: Buffer): Duplex {
  const d: Duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  d.push(first);
  socket.on('data', (chunk: Buffer) => {
    if (!d.push(chunk)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('close', () => d.destroy());
  return d;
}

/** Starts a {@link CanaryServer} on 127.0.0.1, on an ephemeral port. It answers `200 canary` to any request it gets. */
export async function startCanaryServer(): Promise<CanaryServer> {
  const certs = testCertificates();
  const hits: CanaryHit[] = [];
  const sockets = new Set<Socket>();
  const answer = (_req: unknown, res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    res.end('canary\n');
  };
  const http = createHttpServer(answer);
  const https = createHttpsServer({ cert: certs.cert, key: certs.key }, answer);
  https.on('tlsClientError', () => {});
  const front = createNetServer((socket) => {
    const hit: CanaryHit = { at: Date.now(), remotePort: socket.remotePort };
    hits.push(hit);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.once('data', (first: Buffer) => {
      socket.pause();
      hit.tls = first[0] === 0x16;
      (hit.tls ? https : http).emit('connection', replaying(socket, first));
    });
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  const port = (front.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    httpsUrl: `https://127.0.0.1:${port}`,
    port,
    hits,
    async close() {
      const closed = once(front, 'close');
      front.close();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
