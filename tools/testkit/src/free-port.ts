import { once } from 'node:events';
import { createServer } from 'node:net';

/**
 * A port of 127.0.0.1 free right now, for a server that cannot bind port 0
 * and report it (redis-server, haproxy). Another process may take it before
 * the server binds; the servers' starters fail loudly if so.
 */
export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as { port: number };
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
