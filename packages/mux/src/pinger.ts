import { MuxError } from './errors.ts';

interface PendingPing {
  sentAt: number;
  resolve: (rttMs: number) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Ping bookkeeping (spec "Ping": "Contains an opaque value, echoed back").
 * Each ping carries a fresh 32-bit id; the pong with that id resolves it with
 * the RTT in ms. Unanswered within `timeoutMs` → rejects with MuxError
 * `PT_ERR_MUX_KEEPALIVE_TIMEOUT`. Timers are unref()'d.
 * @internal
 */
export class Pinger {
  readonly #pending = new Map<number, PendingPing>();
  readonly #send: (id: number) => void;
  readonly #timeoutMs: number;
  #nextId = 0;
  #rttMs: number | undefined;
  #sampledAt = 0;

  constructor(send: (id: number) => void, timeoutMs: number) {
    this.#send = send;
    this.#timeoutMs = timeoutMs;
  }

  /** Last measured RTT (ms), or undefined. */
  get rttMs(): number | undefined {
    return this.#rttMs;
  }

  /** ms since the last RTT sample (Infinity when none). */
  get sampleAgeMs(): number {
    return this.#rttMs === undefined ? Infinity : performance.now() - this.#sampledAt;
  }

  ping(): Promise<number> {
    const id = this.#nextId;
    this.#nextId = (this.#nextId + 1) >>> 0;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new MuxError('PT_ERR_MUX_KEEPALIVE_TIMEOUT', `ping not answered within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs).unref();
      this.#pending.set(id, { sentAt: performance.now(), resolve, reject, timer });
      this.#send(id);
    });
  }

  onPong(id: number): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    this.#sampledAt = performance.now();
    this.#rttMs = this.#sampledAt - p.sentAt;
    p.resolve(this.#rttMs);
  }

  rejectAll(err: Error): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
  }
}
