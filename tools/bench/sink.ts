// The receiving end of every benchmark transfer, run as its own process so
// sender and receiver each get a core, as agent and gateway would.
//
//   node sink.ts --tcp-window BYTES
//
// Prints `READY {"wsPort":…,"tcpPort":…}` once both listeners are up and exits
// when its stdin closes (the parent died or is done).
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type WebSocket from 'ws';
import { createSession } from '@pipeops/tunnel-mux';
import type { Stream } from '@pipeops/tunnel-mux';

const { values } = parseArgs({ options: { 'tcp-window': { type: 'string', default: String(16 * 1024 * 1024) } } });
const tcpWindow = Number(values['tcp-window']);

/** Counts a stream's bytes to its end, answers with the count (uint64 BE) and ends. */
function countStream(stream: Stream): void {
  let count = 0;
  stream.on('data', (chunk: Buffer) => {
    count += chunk.length;
  });
  stream.on('end', () => {
    const answer = Buffer.alloc(8);
    answer.writeBigUInt64BE(BigInt(count));
    stream.end(answer);
  });
  stream.on('error', () => {
    /* the client tore the session down */
  });
}

function serveMux(transport: Duplex, windowBytes: number): void {
  const session = createSession(transport, { client: false, maxStreamWindowBytes: windowBytes });
  session.on('stream', countStream);
  session.on('error', () => {
    /* client went away */
  });
}

function serveRaw(ws: WebSocket): void {
  let count = 0;
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      count += data.length;
      return;
    }
    ws.send(String(count));
    count = 0;
  });
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
wss.on('connection', (ws, req) => {
  const url = new URL(req.url ?? '/', 'http://sink');
  ws.on('error', () => {
    /* client went away */
  });
  if (url.pathname === '/raw') serveRaw(ws);
  else if (url.pathname === '/mux') serveMux(createWebSocketStream(ws), Number(url.searchParams.get('window')));
  else ws.close(1008, 'unknown path');
});

const tcp = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => {
    /* client went away */
  });
  serveMux(socket, tcpWindow);
});
tcp.listen(0, '127.0.0.1');

await Promise.all([once(wss, 'listening'), once(tcp, 'listening')]);
const wsPort = (wss.address() as AddressInfo).port;
const tcpPort = (tcp.address() as AddressInfo).port;
process.stdout.write(`READY ${JSON.stringify({ wsPort, tcpPort })}\n`);

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
