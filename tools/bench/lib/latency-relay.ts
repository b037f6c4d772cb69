// A TCP relay that holds every chunk for `delayMs` in each direction: the
// stand-in for netem (`tc qdisc … netem delay`), which this kernel does not
// have (no sch_netem module, and none can be loaded). A test double, named as
// one in the report. It delays; it does not limit bandwidth or drop packets.
// Each side's TCP still acknowledges locally, so only end-to-end flow control
// above TCP — the mux windows — sees the round trip; that is what the
// high-latency scenario measures.
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface LatencyRelay {
  port: number;
  close(): Promise<void>;
}

/** Bytes a direction may hold in flight before the relay stops reading its source (bounds memory, far above any window). */
const MAX_HELD_BYTES = 256 * 1024 * 1024;

function delayed(from: net.Socket, to: net.Socket, delayMs: number): void {
  let held = 0;
  from.on('data', (chunk: Buffer) => {
    held += chunk.length;
    if (held > MAX_HELD_BYTES) from.pause();
    setTimeout(() => {
      held -= chunk.length;
      if (!to.destroyed) to.write(chunk);
      if (held <= MAX_HELD_BYTES && from.isPaused()) from.resume();
    }, delayMs);
  });
  from.on('end', () => setTimeout(() => to.end(), delayMs));
  from.on('close', () => setTimeout(() => to.destroy(), delayMs));
  from.on('error', () => {});
}

/** Listens on 127.0.0.1 (port 0) and relays every connection to `targetPort` with `oneWayDelayMs` each way. */
export async function startLatencyRelay(targetPort: number, oneWayDelayMs: number): Promise<LatencyRelay> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    delayed(client, upstream, oneWayDelayMs);
    delayed(upstream, client, oneWayDelayMs);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
