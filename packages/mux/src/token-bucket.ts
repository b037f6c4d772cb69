import type { GrantPacer } from './stream.ts';

/**
 * A token bucket: holds at most `burst` tokens, starts full, refills
 * continuously at `ratePerSecond`. `take()` spends tokens only when there are
 * enough; `charge()` spends them regardless and may leave the bucket in debt,
 * which `waitMs()` turns into a delay — so one bucket serves both as a request
 * rate limiter and as a byte-rate {@link GrantPacer} shared by many streams.
 * Refilling is computed lazily from the clock, so an idle bucket costs
 * nothing (no timer).
 */
export class TokenBucket implements GrantPacer {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /**
   * @param ratePerSecond tokens added per second (> 0).
   * @param burst most tokens held, and the initial amount (> 0).
   * @param now clock in ms; `performance.now` by default (monotonic). Tests inject their own.
   */
  constructor(ratePerSecond: number, burst: number, now: () => number = () => performance.now()) {
    this.#ratePerMs = ratePerSecond / 1000;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  #refill(): void {
    const t = this.#now();
    // A clock going backwards (an injected one) adds nothing rather than removing tokens.
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, t - this.#at) * this.#ratePerMs);
    this.#at = t;
  }

  /** Spends `n` tokens (default 1) and returns true, or returns false (spending nothing) when fewer are left. */
  take(n = 1): boolean {
    this.#refill();
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /** Spends `n` tokens even if that leaves the bucket in debt. */
  charge(n: number): void {
    this.#refill();
    this.#tokens -= n;
  }

  /** Milliseconds until the bucket holds `n` tokens (default: until it is out of debt); 0 when it does now. */
  waitMs(n = 0): number {
    this.#refill();
    return this.#tokens >= n ? 0 : Math.ceil((n - this.#tokens) / this.#ratePerMs);
  }

  /** True when the bucket is full (an idle one may be forgotten). */
  get full(): boolean {
    this.#refill();
    return this.#tokens >= this.#burst;
  }
}
