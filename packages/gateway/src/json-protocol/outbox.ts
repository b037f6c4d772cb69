import WebSocket from 'ws';
import { encodeJson } from './safe-json.ts';

/**
 * The sending side of one runner socket: JSON messages out, and the
 * backpressure signal for the response streams feeding it. While the
 * socket's `bufferedAmount` is above `maxBufferedBytes` it is congested;
 * readers register with {@link whenDrained} and are resumed from the send
 * callbacks (which fire as the kernel takes the bytes), so a runner that
 * stops reading stops the agent's stream through mux flow control instead
 * of growing gateway memory.
 */
export class Outbox {
  readonly #ws: WebSocket;
  readonly #maxBufferedBytes: number;
  readonly #waiters = new Set<() => void>();

  constructor(ws: WebSocket, maxBufferedBytes: number) {
    this.#ws = ws;
    this.#maxBufferedBytes = maxBufferedBytes;
  }

  /**
   * Sends one message (a no-op once the socket is closing). Returns false,
   * sending nothing, when the message cannot be encoded: a value nested
   * deeper than `JSON.stringify` can follow (it throws a RangeError) — the
   * caller answers that id with an error instead.
   */
  send(message: Record<string, unknown>): boolean {
    if (this.#ws.readyState !== WebSocket.OPEN) return true;
    const text = encodeJson(message);
    if (text === undefined) return false;
    this.#ws.send(text, this.#onFlushed);
    return true;
  }

  /** True while more than `maxBufferedBytes` wait to be written to the runner. */
  get congested(): boolean {
    return this.#ws.bufferedAmount > this.#maxBufferedBytes;
  }

  /** Bytes queued towards the runner. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** Readers currently waiting for the socket to drain. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** Calls `resume` once the socket is no longer congested (or the socket closed). Returns a function that unregisters it. */
  whenDrained(resume: () => void): () => void {
    this.#waiters.add(resume);
    return () => {
      this.#waiters.delete(resume);
    };
  }

  /** Drops every waiter without calling it (the socket is gone). */
  clear(): void {
    this.#waiters.clear();
  }

  readonly #onFlushed = (): void => {
    if (this.#waiters.size === 0 || this.congested) return;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const resume of waiters) resume();
  };
}
