// Upgrades on exec/attach/portforward, as the API server does them: a
// WebSocket with one of the *.channel.k8s.io / portforward.k8s.io
// subprotocols, or SPDY/3.1 (here: the 101 head, then raw bytes). Both echo
// what they get, so a test sees its own bytes come back through the path.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { statusBody } from './fake-apiserver-routes.ts';

/** WebSocket subprotocols the fake accepts; it picks the first one the client offers. */
export const FAKE_WS_PROTOCOLS: readonly string[] = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'portforward.k8s.io'];
/** After the client half-closes a SPDY upgrade, the fake writes this and ends. */
export const FAKE_SPDY_BYE = 'bye\n';

const UPGRADE_PATH = /^\/api\/v1\/namespaces\/default\/pods\/[^/]+\/(exec|attach|portforward)$/;

/** Writes a complete HTTP/1.1 response on a socket that asked for an upgrade, then ends it. */
export function rejectUpgrade(socket: Duplex, code: number, reason: string, message: string): void {
  const body = statusBody(code, reason, message);
  socket.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** The list of tokens in (possibly repeated) comma-separated header values, in order. */
function headerTokens(value: string | string[] | undefined): string[] {
  const values = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return values
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Echoes WebSocket messages; a message whose payload after the channel byte is "close" closes 1000. */
function echoWebSocket(ws: WebSocket): void {
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (buf.subarray(1).toString('utf8') === 'close') ws.close(1000, 'done');
    else ws.send(buf, { binary: isBinary });
  });
  ws.on('error', () => ws.terminate());
}

/** Handles the upgrade part of the fake API server. */
export class UpgradeHandler {
  readonly #wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    // The offered set keeps the client's order: the first offered supported one wins.
    handleProtocols: (offered: Set<string>) => [...offered].find((p) => FAKE_WS_PROTOCOLS.includes(p)) ?? false,
  });
  readonly #sockets = new Set<Duplex>();

  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'https://fake-apiserver').pathname;
    if (!UPGRADE_PATH.test(path)) return rejectUpgrade(socket, 404, 'NotFound', 'the server could not find the requested resource');
    const kind = (req.headers.upgrade ?? '').toLowerCase();
    if (kind === 'websocket') {
      const offered = headerTokens(req.headers['sec-websocket-protocol']);
      const chosen = offered.find((p) => FAKE_WS_PROTOCOLS.includes(p));
      if (chosen === undefined) return rejectUpgrade(socket, 400, 'BadRequest', `unsupported subprotocols: ${offered.join(', ') || '(none)'}`);
      this.#wss.handleUpgrade(req, socket, head, echoWebSocket);
      return;
    }
    if (kind === 'spdy/3.1') return this.#spdy(req, socket, head);
    rejectUpgrade(socket, 400, 'BadRequest', `unsupported upgrade: ${req.headers.upgrade ?? '(none)'}`);
  }

  #spdy(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const chosen = headerTokens(req.headers['x-stream-protocol-version'])[0];
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
        (chosen === undefined ? '' : `X-Stream-Protocol-Version: ${chosen}\r\n`) +
        '\r\n',
    );
    if (head.length > 0) socket.write(head);
    // Echo with backpressure; our write side stays open after the client's FIN, so it can say bye.
    socket.pipe(socket, { end: false });
    socket.once('end', () => socket.end(FAKE_SPDY_BYE));
  }

  /** Ends every upgraded connection abruptly. */
  close(): void {
    for (const ws of this.#wss.clients) ws.terminate();
    for (const s of this.#sockets) s.destroy();
    this.#wss.close();
  }
}
