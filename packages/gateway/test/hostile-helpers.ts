// Shared by the hostile-*.test.ts files: clients that misbehave on purpose
// (silent or trickling TCP/TLS connections), an agent double whose data
// streams are served by a plain http request handler, and small HTTPS helpers.
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { request } from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { createSession, type Session } from '@pipeops/tunnel-mux';
import { ControlChannel, readPreamble, serveHttpOverStream, websocketDuplex, type HelloMessage, type WelcomeMessage } from '@pipeops/tunnel-protocol';
import { dialAgentSocket, nextMessage } from './helpers/fake-agent.ts';
import type { TestGateway } from './helpers/gateway.ts';

type After = { after(fn: () => Promise<void> | void): void };

/** A client connection and what the server did to it. */
export interface HostileConnection {
  socket: net.Socket;
  /** Everything the server sent. */
  received(): string;
  /**
   * Resolves when the server has ended the connection (FIN or reset). The
   * client never ends its side (half-open allowed), so whether the server
   * also released the socket is seen on the server: see {@link connections}.
   */
  ended: Promise<void>;
}

function track(t: After, socket: net.Socket): HostileConnection {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {
    /* a reset by the server is one way of closing */
  });
  const ended = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  t.after(() => {
    socket.destroy();
  });
  return { socket, received: () => Buffer.concat(chunks).toString('latin1'), ended };
}

/** Open connections the server holds (every TCP connection it accepted and has not released). */
export function connections(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** A TCP connection that never sends a byte (so never starts its TLS handshake). Half-open allowed: a FIN from the server does not close it. */
export async function silentTcp(t: After, port: number): Promise<HostileConnection> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const c = track(t, socket);
  await once(socket, 'connect');
  return c;
}

/**
 * A TCP connection that starts a TLS ClientHello and then sends one more byte
 * of it every `everyMs`, forever: each byte would restart an idle timeout.
 */
export async function tricklingTlsHello(t: After, port: number, everyMs = 50): Promise<HostileConnection> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const c = track(t, socket);
  await once(socket, 'connect');
  // A TLS record header announcing a 512-byte handshake record and a ClientHello header
  // announcing 508 bytes; then filler, one byte at a time, that would take 25 s to complete it.
  socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
  const timer = setInterval(() => {
    if (socket.writable) socket.write(Buffer.from([0x00]));
  }, everyMs);
  void c.ended.then(() => clearInterval(timer));
  t.after(() => clearInterval(timer));
  return c;
}

/** A TLS connection (handshake done) that then sends nothing. Half-open allowed. */
export async function silentTls(t: After, port: number, ca: string): Promise<HostileConnection> {
  const socket = tls.connect({ port, host: '127.0.0.1', ca, allowHalfOpen: true } as tls.ConnectionOptions);
  const c = track(t, socket);
  await once(socket, 'secureConnect');
  return c;
}

/**
 * Slowloris: a TLS connection that sends a request line and then one more
 * header line every `everyMs`, never the blank line ending the head. Half-open allowed.
 */
export async function slowloris(t: After, port: number, ca: string, everyMs = 50): Promise<HostileConnection> {
  const socket = tls.connect({ port, host: '127.0.0.1', ca, allowHalfOpen: true } as tls.ConnectionOptions);
  const c = track(t, socket);
  await once(socket, 'secureConnect');
  socket.write('GET /health HTTP/1.1\r\nHost: gateway\r\n');
  let n = 0;
  const timer = setInterval(() => {
    if (socket.writable) socket.write(`X-Slow-${n++}: ${'a'.repeat(8)}\r\n`);
  }, everyMs);
  void c.ended.then(() => clearInterval(timer));
  t.after(() => clearInterval(timer));
  return c;
}

/** A GET over HTTPS (no keep-alive) resolved with its status and body text. */
export function httpsGet(url: string, ca: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
    request(url, { ca, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/** An agent double for cluster `cluster` whose `http` streams are served by `handler`. */
export interface HttpAgent {
  session: Session;
  control: ControlChannel;
  welcome: WelcomeMessage;
}

/** Connects an {@link HttpAgent} (hello/welcome done); torn down by t.after(). */
export async function connectHttpAgent(
  t: After,
  gw: TestGateway,
  token: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  hello: Partial<HelloMessage> = {},
): Promise<HttpAgent> {
  const ws = await dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token });
  const session = createSession(websocketDuplex(ws), { client: true, keepAliveIntervalMs: 0 });
  session.on('error', () => {});
  const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  const upstream = http.createServer(handler);
  t.after(async () => {
    session.destroy();
    ws.terminate();
    await closed;
  });
  session.on('stream', (stream: Duplex) => {
    stream.on('error', () => {});
    readPreamble(stream).then(
      (p) => {
        if (p.kind === 'http') serveHttpOverStream(upstream, stream);
        else stream.destroy();
      },
      () => stream.destroy(),
    );
  });
  const control = new ControlChannel(session.open());
  control.on('error', () => {});
  control.send({
    type: 'hello',
    agentId: 'hostile-agent',
    name: 'hostile',
    clusterName: '',
    version: '0.0.0-test',
    labels: { env: 'test' },
    protocolVersion: 1,
    ...hello,
  } as HelloMessage);
  const welcome = (await nextMessage(control, 'welcome')) as WelcomeMessage;
  return { session, control, welcome };
}

/** `[[[…]]]` nested `depth` deep, as JSON text (building it as a value and stringifying would overflow the stack). */
export function deepJsonText(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

/** Re-checks an asynchronous condition on each turn of the event loop's timers (5 ms) until it holds; fails after `deadlineMs`. */
export async function until(cond: () => Promise<boolean>, what: string, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
