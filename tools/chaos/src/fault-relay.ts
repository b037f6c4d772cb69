// A TCP relay between the agent and the gateway that can misbehave on
// command, the way links do: CUT (both sockets of every connection ended at
// once: with a RST, as a NAT or load balancer that drops its state, or with
// a FIN each way, as a proxy that closes politely; what arrives after is
// dropped),
// FREEZE (nothing forwarded and nothing closed, in either direction, until
// thawed — a blackholed path; connections made meanwhile wait too) and
// THROTTLE (each direction limited to a byte rate). A test double, as is
// ../../bench/lib/latency-relay.ts (which delays and nothing else).
//
// Every direction goes through a queue of chunks and end/close markers that
// is flushed as the mode allows; the source is paused while the queue holds
// more than HIGH_WATER_BYTES or the destination is full, so a slow link
// pushes back on the sender through TCP, as a real one does.
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** Queued bytes of one direction above which its source is paused. */
const HIGH_WATER_BYTES = 64 * 1024;
/** How often a throttled direction gets its next budget, in ms. */
const THROTTLE_TICK_MS = 50;

type Mode = { kind: 'pass' } | { kind: 'freeze' } | { kind: 'throttle'; bytesPerSecond: number };
type Item = Buffer | 'end' | 'destroy';

class Direction {
  readonly #from: net.Socket;
  readonly #to: net.Socket;
  readonly #queue: Item[] = [];
  #queued = 0;
  #blocked = false;
  budget = 0;

  constructor(from: net.Socket, to: net.Socket, flushAll: () => void) {
    this.#from = from;
    this.#to = to;
    from.on('data', (chunk: Buffer) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued > HIGH_WATER_BYTES) from.pause();
      flushAll();
    });
    from.once('end', () => {
      this.#queue.push('end');
      flushAll();
    });
    from.once('close', () => {
      this.#queue.push('destroy');
      flushAll();
    });
    from.on('error', () => {});
    to.on('drain', () => {
      this.#blocked = false;
      flushAll();
    });
  }

  /** Sends what `mode` allows now. */
  flush(mode: Mode): void {
    if (mode.kind === 'freeze') return;
    while (this.#queue.length > 0 && !this.#blocked) {
      const item = this.#queue[0]!;
      if (item === 'end') {
        this.#queue.shift();
        if (!this.#to.destroyed) this.#to.end();
        continue;
      }
      if (item === 'destroy') {
        this.#queue.shift();
        this.#to.destroy();
        continue;
      }
      let chunk = item;
      if (mode.kind === 'throttle') {
        if (this.budget <= 0) return;
        if (chunk.length > this.budget) {
          this.#queue[0] = chunk.subarray(this.budget);
          chunk = chunk.subarray(0, this.budget);
        } else this.#queue.shift();
        this.budget -= chunk.length;
      } else this.#queue.shift();
      this.#queued -= chunk.length;
      if (!this.#to.destroyed && !this.#to.write(chunk)) this.#blocked = true;
    }
    if (this.#queued <= HIGH_WATER_BYTES && this.#from.isPaused() && !this.#from.destroyed) this.#from.resume();
  }
}

interface Pair {
  /** Blackholed: nothing more is forwarded, whatever the mode. */
  dead: boolean;
  client: net.Socket;
  server: net.Socket | undefined;
  directions: Direction[];
}

/** A relay in front of one target port; see the file header for its faults. */
export interface FaultRelay {
  readonly port: number;
  /** Connections currently relayed (or held while frozen). */
  readonly connections: number;
  /** Ends both sockets of every current connection (`reset`: RST; `close`: FIN, later bytes dropped); later connections pass. */
  cut(how: 'reset' | 'close'): void;
  /** Stops forwarding (and opening) anything until {@link FaultRelay.restore}. */
  freeze(): void;
  /** Limits each direction to `bytesPerSecond` until {@link FaultRelay.restore}. */
  throttle(bytesPerSecond: number): void;
  /** Blackholes every current connection until {@link FaultRelay.restore}; new connections pass. */
  blackhole(): void;
  /** Back to forwarding everything at once (what was held is sent, in order); blackholed connections are destroyed. */
  restore(): void;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (port 0) and relays every connection to `targetPort`. */
export async function startFaultRelay(targetPort: number): Promise<FaultRelay> {
  let mode: Mode = { kind: 'pass' };
  const pairs = new Set<Pair>();
  const flushAll = (): void => {
    for (const p of pairs) if (!p.dead) for (const d of p.directions) d.flush(mode);
  };
  const connect = (pair: Pair): void => {
    const server = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true, allowHalfOpen: true });
    pair.server = server;
    pair.directions = [new Direction(pair.client, server, flushAll), new Direction(server, pair.client, flushAll)];
    pair.client.resume();
    flushAll();
  };
  const listener = net.createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const pair: Pair = { dead: false, client, server: undefined, directions: [] };
    pairs.add(pair);
    client.on('error', () => {});
    client.once('close', () => {
      if (pair.server === undefined) pairs.delete(pair);
    });
    const forget = (): void => {
      if (!pair.dead && pair.client.destroyed && pair.server?.destroyed !== false) pairs.delete(pair);
    };
    client.once('close', forget);
    if (mode.kind !== 'freeze') connect(pair);
    pair.server?.once('close', forget);
  });
  let timer: NodeJS.Timeout | undefined;
  const stopTimer = (): void => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  };
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  return {
    port: (listener.address() as AddressInfo).port,
    get connections() {
      return pairs.size;
    },
    cut(how) {
      for (const p of pairs) {
        for (const socket of [p.client, p.server]) {
          if (socket === undefined || socket.destroyed) continue;
          if (how === 'reset') {
            socket.resetAndDestroy();
            continue;
          }
          socket.removeAllListeners('data');
          socket.on('data', () => {});
          socket.resume();
          socket.once('end', () => socket.destroy());
          socket.end();
        }
      }
      pairs.clear();
    },
    freeze() {
      stopTimer();
      mode = { kind: 'freeze' };
    },
    throttle(bytesPerSecond) {
      stopTimer();
      mode = { kind: 'throttle', bytesPerSecond };
      const perTick = Math.max(1, Math.floor((bytesPerSecond * THROTTLE_TICK_MS) / 1000));
      timer = setInterval(() => {
        for (const p of pairs) for (const d of p.directions) d.budget = perTick;
        flushAll();
      }, THROTTLE_TICK_MS);
    },
    blackhole() {
      for (const p of pairs) p.dead = true;
    },
    restore() {
      stopTimer();
      for (const p of pairs) {
        if (!p.dead) continue;
        p.client.destroy();
        p.server?.destroy();
        pairs.delete(p);
      }
      mode = { kind: 'pass' };
      for (const p of pairs) if (p.server === undefined && !p.client.destroyed) connect(p);
      flushAll();
    },
    async close() {
      stopTimer();
      for (const p of pairs) {
        p.client.destroy();
        p.server?.destroy();
      }
      pairs.clear();
      const closed = once(listener, 'close');
      listener.close();
      await closed;
    },
  };
}
