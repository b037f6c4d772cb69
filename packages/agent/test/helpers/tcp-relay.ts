import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { once } from 'node:events';

/**
 * A TCP relay on 127.0.0.1 to a target port. `blackhole()` stops forwarding
 * in both directions without closing any socket — a dead peer, as seen by
 * the agent (a NAT that dropped the flow, a frozen gateway).
 */
export interface TcpRelay {
  port: number;
  connections: number;
  blackhole(): void;
  close(): Promise<void>;
}

export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  let dead = false;
  const sockets = new Set<Socket>();
  const state = { connections: 0 };
  const server: Server = createServer((client) => {
    state.connections++;
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('data', (d: Buffer) => {
      if (!dead) upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!dead) client.write(d);
    });
    client.on('end', () => {
      if (!dead) upstream.end();
    });
    upstream.on('end', () => {
      if (!dead) client.end();
    });
    client.on('close', () => {
      if (!dead) upstream.destroy();
    });
    upstream.on('close', () => {
      if (!dead) client.destroy();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    get connections() {
      return state.connections;
    },
    blackhole() {
      dead = true;
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      if (server.listening) await once(server, 'close');
    },
  };
}
