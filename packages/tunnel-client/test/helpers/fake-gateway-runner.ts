// A test double of the gateway's runner endpoint only (`/ws/runner`): it
// authenticates the runner token, accepts the yamux session (mux server side)
// and serves every stream with a local http.Server app, as the gateway would
// after bridging to an agent. For unit tests of the client before — and
// independently of — the real gateway and agent (those run in e2e tests).
import { once } from 'node:events';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import { createSession, type Session } from '@pipeops/tunnel-mux';
import { RUNNER_WS_PATH, SUBPROTOCOL, serveHttpOverStream, websocketDuplex } from '@pipeops/tunnel-protocol';
import { testCertificates } from '@pipeops/tunnel-testkit';
import { WebSocketServer } from 'ws';

export interface FakeGatewayRunner {
  /** `https://127.0.0.1:port`. */
  readonly url: string;
  readonly port: number;
  /** PEM of the CA that signed the server certificate. */
  readonly caCert: string;
  /** Live runner sessions. */
  readonly sessions: Set<Session>;
  /** Query and headers of each accepted upgrade. */
  readonly upgrades: Array<{ runnerId: string | null; cluster: string | null; authorization: string | undefined; protocol: string | undefined }>;
  /** Upgrade requests received on /ws/runner, refused ones included. */
  readonly attempts: () => number;
  /** Stops listening and kills every session (like a gateway crash). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\nConnection: close\r\n\r\n${text}`);
}

/** Starts the fake on 127.0.0.1:0 with real TLS; everything is closed in t.after(). */
export async function startFakeGatewayRunner(t: TestContext, app: HttpServer, opts: { token: string; cluster?: string }): Promise<FakeGatewayRunner> {
  const certs = testCertificates();
  const sessions = new Set<Session>();
  const sockets = new Set<Socket>();
  const upgrades: FakeGatewayRunner['upgrades'] = [];
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (p) => (p.has(SUBPROTOCOL) ? SUBPROTOCOL : false) });
  let server: HttpsServer;
  let port = 0;
  let attempts = 0;

  const create = (): HttpsServer => {
    const s = createHttpsServer({ cert: certs.cert, key: certs.key }, (_req, res) => {
      res.writeHead(404).end();
    });
    s.on('connection', (c: Socket) => {
      sockets.add(c);
      c.once('close', () => sockets.delete(c));
    });
    s.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'https://x');
      if (url.pathname !== RUNNER_WS_PATH) {
        refuse(socket, 404, 'Not Found');
        return;
      }
      attempts++;
      if (req.headers.authorization !== `Bearer ${opts.token}`) {
        refuse(socket, 401, 'Unauthorized');
        return;
      }
      if (opts.cluster !== undefined && url.searchParams.get('cluster') !== opts.cluster) {
        refuse(socket, 403, 'Forbidden');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        upgrades.push({
          runnerId: url.searchParams.get('runner_id'),
          cluster: url.searchParams.get('cluster'),
          authorization: req.headers.authorization,
          protocol: ws.protocol,
        });
        const session = createSession(websocketDuplex(ws), { client: false });
        sessions.add(session);
        session.once('close', () => sessions.delete(session));
        session.on('stream', (stream) => serveHttpOverStream(app, stream));
      });
    });
    return s;
  };
  const listen = async (): Promise<void> => {
    server = create();
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  };
  const stop = async (): Promise<void> => {
    if (!server.listening) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sessions) s.destroy();
    for (const c of sockets) c.destroy();
    await closed;
  };
  await listen();
  t.after(async () => {
    await stop();
    wss.close();
  });
  return {
    get url() {
      return `https://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    caCert: certs.caCert,
    sessions,
    upgrades,
    attempts: () => attempts,
    stop,
    restart: listen,
  };
}
