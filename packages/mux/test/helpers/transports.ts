import { once } from 'node:events';
import { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, createWebSocketStream } from 'ws';
import { DIRECT_TRANSPORT, type DirectTransport } from '../../src/index.ts';

/** Two connected byte Duplexes; bytes written to `a` come out of `b` and back. */
export interface TransportPair {
  a: Duplex;
  b: Duplex;
  /** Closes both ends and anything behind them (server sockets). */
  close(): Promise<void>;
}

export interface TransportKind {
  name: string;
  /** Multiplier tests apply to payload sizes (slow transports carry less). */
  scale: number;
  create(): Promise<TransportPair>;
}

const PIECES = [1, 5, 13, 4096];

/**
 * One end of an in-memory pipe. Delivery is asynchronous (setImmediate), like
 * a socket, and respects the peer's readable backpressure. With `rechunk`,
 * every write is split into pieces of 1, 5, 13 and 4096 bytes, cycling.
 */
class MemoryEnd extends Duplex {
  peer: MemoryEnd | undefined;
  #blocked: (() => void) | undefined;
  readonly #rechunk: boolean;
  #piece = 0;

  constructor(rechunk: boolean) {
    super({ allowHalfOpen: true });
    this.#rechunk = rechunk;
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    setImmediate(() => {
      const peer = this.peer;
      if (peer === undefined || peer.destroyed) return cb();
      let ok = true;
      for (const { chunk } of chunks) ok = this.#deliver(peer, chunk);
      if (ok) cb();
      else peer.#blocked = () => cb();
    });
  }

  #deliver(peer: MemoryEnd, chunk: Buffer): boolean {
    if (!this.#rechunk) return peer.push(chunk);
    let ok = true;
    for (let off = 0; off < chunk.length; ) {
      const n = PIECES[this.#piece++ % PIECES.length] as number;
      ok = peer.push(chunk.subarray(off, off + n));
      off += n;
    }
    return ok;
  }

  override _read(): void {
    const b = this.#blocked;
    this.#blocked = undefined;
    b?.();
  }

  override _final(cb: (err?: Error | null) => void): void {
    setImmediate(() => {
      if (this.peer !== undefined && !this.peer.destroyed) this.peer.push(null);
      cb();
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    if (peer !== undefined && !peer.destroyed) setImmediate(() => peer.destroy());
    cb(err);
  }
}

/** Links two in-process ends to each other as one transport pair. */
function linked<E extends Duplex & { peer: E | undefined }>(a: E, b: E): TransportPair {
  a.peer = b;
  b.peer = a;
  return {
    a,
    b,
    async close() {
      a.destroy();
      b.destroy();
    },
  };
}

export function memoryPair(rechunk = false): TransportPair {
  return linked(new MemoryEnd(rechunk), new MemoryEnd(rechunk));
}

/** Two connected raw WebSockets on 127.0.0.1 (port 0). */
export async function rawWebSocketPair(): Promise<{ clientWs: WebSocket; serverWs: WebSocket; close(): Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const clientWs = new WebSocket(`ws://127.0.0.1:${port}`);
  const [[serverWs]] = (await Promise.all([once(server, 'connection'), once(clientWs, 'open')])) as [[WebSocket], unknown];
  return {
    clientWs,
    serverWs,
    async close() {
      clientWs.terminate();
      serverWs.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A real WebSocket on 127.0.0.1 (port 0), both ends wrapped by ws's createWebSocketStream (binary). */
export async function websocketPair(): Promise<TransportPair> {
  const raw = await rawWebSocketPair();
  const a = createWebSocketStream(raw.clientWs);
  const b = createWebSocketStream(raw.serverWs);
  // Errors surface through the mux session; keep them from crashing the test process.
  a.on('error', () => {});
  b.on('error', () => {});
  return {
    a,
    b,
    async close() {
      a.destroy();
      b.destroy();
      await raw.close();
    },
  };
}

/**
 * Test double of a transport that offers the mux's {@link DirectTransport}
 * (as the protocol's WebSocket framing does): an in-memory end whose
 * session's batches reach the peer session's `receive` as one chunk each,
 * past both Duplexes, in a later turn. A batch waits once more than
 * {@link DIRECT_IN_FLIGHT_BYTES} are on their way, until they have arrived.
 */
export class DirectMemoryEnd extends MemoryEnd {
  declare peer: DirectMemoryEnd | undefined;
  /** Batches written, and how many of them were answered "wait". */
  readonly stats = { batches: 0, waits: 0 };
  #consumer: ((chunk: Buffer) => void) | undefined;
  #inFlight = 0;
  #drained: (() => void)[] = [];

  constructor() {
    super(false);
    const direct: DirectTransport = {
      receiveInto: (receive) => {
        this.#consumer = receive;
      },
      writeBatch: (chunks, onDrain) => this.#writeBatch(chunks, onDrain),
    };
    Object.defineProperty(this, DIRECT_TRANSPORT, { value: direct });
  }

  /** Bytes for this end (a batch, or a raw peer's write through the Duplex): to the consumer once there is one. */
  override push(chunk: Buffer | null): boolean {
    if (chunk === null || this.#consumer === undefined) return super.push(chunk);
    this.#consumer(chunk);
    return true;
  }

  #writeBatch(chunks: Buffer[], onDrain: () => void): boolean {
    const peer = this.peer;
    if (peer === undefined || peer.destroyed) return true;
    const batch = Buffer.concat(chunks);
    this.stats.batches++;
    this.#inFlight += batch.length;
    setImmediate(() => {
      this.#inFlight -= batch.length;
      if (!peer.destroyed) peer.push(batch);
      if (this.#inFlight <= DIRECT_IN_FLIGHT_BYTES) for (const d of this.#drained.splice(0)) d();
    });
    if (this.#inFlight <= DIRECT_IN_FLIGHT_BYTES) return true;
    this.#drained.push(onDrain);
    this.stats.waits++;
    return false;
  }
}

const DIRECT_IN_FLIGHT_BYTES = 64 * 1024;

/** Two linked {@link DirectMemoryEnd}s. */
export function directMemoryPair(): TransportPair & { a: DirectMemoryEnd; b: DirectMemoryEnd } {
  const a = new DirectMemoryEnd();
  const b = new DirectMemoryEnd();
  return { ...linked(a, b), a, b };
}

export const transports: TransportKind[] = [
  { name: 'in-memory pair', scale: 1, create: async () => memoryPair(false) },
  { name: 'in-memory pair, direct (past both Duplexes)', scale: 1, create: async () => directMemoryPair() },
  { name: 'WebSocket on 127.0.0.1', scale: 1, create: websocketPair },
  { name: 're-chunking pipe (1/5/13/4096)', scale: 1, create: async () => memoryPair(true) },
];

/**
 * Test double for a long link: one end of an in-memory pipe that delivers
 * every write `delayMs` later, in order, and buffers without limit (like a
 * path with a large bandwidth-delay product). Write callbacks complete at
 * once, so only the mux's own flow control limits what is in flight.
 */
class DelayingPipeEnd extends Duplex {
  peer: DelayingPipeEnd | undefined;
  readonly #delayMs: number;

  constructor(delayMs: number) {
    super({ allowHalfOpen: true });
    this.#delayMs = delayMs;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // Same-duration timers fire in the order they were set: bytes stay in order.
    setTimeout(() => {
      const peer = this.peer;
      if (peer !== undefined && !peer.destroyed) peer.push(chunk);
    }, this.#delayMs);
    cb();
  }

  override _read(): void {}

  override _final(cb: (err?: Error | null) => void): void {
    setTimeout(() => {
      if (this.peer !== undefined && !this.peer.destroyed) this.peer.push(null);
    }, this.#delayMs);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    if (peer !== undefined && !peer.destroyed) setImmediate(() => peer.destroy());
    cb(err);
  }
}

/** Two ends of a {@link DelayingPipeEnd} pipe: each direction adds `delayMs`, so the RTT is about twice that. */
export function delayingPair(delayMs: number): TransportPair {
  return linked(new DelayingPipeEnd(delayMs), new DelayingPipeEnd(delayMs));
}
