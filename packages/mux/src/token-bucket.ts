/**
 * A token bucket: holds at most `burst` tokens, starts full, refills
 * continuously at `ratePerSecond`. `take()` spends one token if there is one.
 * Refilling is computed lazily from the clock on each `take()`, so an idle
 * bucket costs nothing (no timer).
 * @internal
 */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /**
   * @param ratePerSecond tokens added per second (> 0).
   * @param burst most tokens held, and the initial amount (>= 1).
   * @param now clock in ms; `performance.now` by default (monotonic). Tests inject their own.
   */
  constructor(ratePerSecond: number, burst: number, now: () => number = () => performance.now()) {
    this.#ratePerMs = ratePerSecond / 1000;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  /** Spends one token and returns true, or returns false when the bucket is empty. */
  take(): boolean {
    const t = this.#now();
    // A clock going backwards (an injected one) adds nothing rather than removing tokens.
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, t - this.#at) * this.#ratePerMs);
    this.#at = t;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
