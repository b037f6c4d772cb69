import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import { createSession } from '@pipeops/tunnel-mux';
import type { Session } from '@pipeops/tunnel-mux';
import { ControlChannel, SUBPROTOCOL, TUNNEL_PATH, encodePreamble, websocketDuplex } from '@pipeops/tunnel-protocol';
import type { ControlMessage, StreamPreamble } from '@pipeops/tunnel-protocol';

/**
 * A gateway-side test double built from ws + mux + protocol: authenticates
 * one token, answers hello with welcome, records status reports, opens data
 * streams, and can ask the agent to reconnect. Used where the test needs to
 * see or steer what the real gateway hides (upgrade headers, withheld welcome).
 */
export interface FakeGateway {
  port: number;
  url: string;
  /** Upgrade requests seen (one per dial), with their headers. */
  upgrades: IncomingHttpHeaders[];
  messages: ControlMessage[];
  sessions: Session[];
  openStream(p: Omit<StreamPreamble, 'v'> | Record<string, unknown>): Duplex;
  /** Sends control `reconnect` then GoAway on the current session. */
  askReconnect(): void;
  /** Starts accepting agents (after `unavailable: true`). */
  available(): void;
  close(): Promise<void>;
}

export interface FakeGatewayOptions {
  token: string;
  tls?: { cert: string; key: string };
  port?: number;
  /** Never send welcome (handshake timeout tests). */
  withholdWelcome?: boolean;
  /** The protocol version the welcome names (default: none, as gateways before the field). */
  welcomeProtocolVersion?: number;
  keepAliveIntervalMs?: number;
  /**
   * Answer every tunnel upgrade 503 until `available()` (a gateway that is
   * up but not serving yet): an agent dials and backs off, on a port that
   * stays this test's (no freed port another test could take meanwhile).
   */
  unavailable?: boolean;
}

export async function startFakeGateway(o: FakeGatewayOptions): Promise<FakeGateway> {
  const server: Server = o.tls !== undefined ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }) : createHttpServer();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (p) => (p.has(SUBPROTOCOL) ? SUBPROTOCOL : false) });
  const upgrades: IncomingHttpHeaders[] = [];
  const messages: ControlMessage[] = [];
  const sessions: Session[] = [];
  const sockets = new Set<Socket>();
  const controls: ControlChannel[] = [];
  let serving = o.unavailable !== true;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    upgrades.push(req.headers);
    socket.on('error', () => {});
    if (!serving) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    if (req.url !== TUNNEL_PATH || req.headers.authorization !== `Bearer ${o.token}`) {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const session = createSession(websocketDuplex(ws), { client: false, keepAliveIntervalMs: o.keepAliveIntervalMs ?? 0 });
      session.on('error', () => {});
      sessions.push(session);
      void session.accept().then(
        (stream) => {
          const control = new ControlChannel(stream);
          controls.push(control);
          control.on('error', () => {});
          control.on('message', (m) => {
            messages.push(m);
            if (m.type === 'hello' && o.withholdWelcome !== true) {
              control.send({
                type: 'welcome',
                sessionId: `s${sessions.length}`,
                gatewayVersion: 'fake',
                ...(o.welcomeProtocolVersion !== undefined ? { protocolVersion: o.welcomeProtocolVersion } : {}),
              });
            }
          });
        },
        () => {},
      );
    });
  });
  server.listen(o.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const current = (): Session => {
    const s = sessions.findLast((x) => !x.isClosed);
    if (s === undefined) throw new Error('no live session');
    return s;
  };
  return {
    port,
    url: `${o.tls !== undefined ? 'https' : 'http'}://127.0.0.1:${port}`,
    upgrades,
    messages,
    sessions,
    openStream(p) {
      const s = current().open();
      s.write(encodePreamble({ v: 1, ...p } as StreamPreamble));
      return s;
    },
    available() {
      serving = true;
    },
    askReconnect() {
      controls.at(-1)?.send({ type: 'reconnect', reason: 'test' });
      current().goAway();
    },
    async close() {
      for (const s of sessions) s.destroy();
      for (const c of wss.clients) c.terminate();
      server.close();
      for (const s of sockets) s.destroy();
      if (server.listening) await once(server, 'close');
    },
  };
}
