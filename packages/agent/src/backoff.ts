/**
 * Reconnect pacing.
 *
 * - After a failed dial: "full jitter" — a delay drawn uniformly from
 *   `[0, min(maxIntervalMs, intervalMs · 2^(failures-1))]` (AWS architecture
 *   blog, "Exponential Backoff And Jitter").
 * - After losing a session: the first re-dial comes after a delay drawn from
 *   `[0, min(intervalMs, 1 s))` — short, but not the same instant for every
 *   agent of a gateway replica that died (they all lose their sessions
 *   together) — unless the lost session was itself short-lived (shorter than
 *   `stableAfterMs`) and already part of a failure streak: then the streak
 *   continues exponentially, so a gateway that accepts and drops at once
 *   cannot cause a dial storm. (A re-dial the gateway asked for — control
 *   `reconnect`, GoAway — is not paced here: it is immediate.)
 * - A session that stayed up `stableAfterMs` resets the streak.
 */
/** The widest spread of the first re-dial after a session loss (ms): agents that lost their sessions together do not all dial in the same instant. */
export const FIRST_REDIAL_JITTER_MS = 1_000;

export interface BackoffOptions {
  intervalMs: number;
  maxIntervalMs: number;
  stableAfterMs: number;
  /** Uniform random in [0, 1). Default `Math.random` (injectable for tests). */
  random?: () => number;
}

export class Backoff {
  readonly #o: Required<BackoffOptions>;
  #failures = 0;

  constructor(options: BackoffOptions) {
    this.#o = { random: Math.random, ...options };
  }

  /** Consecutive failures in the current streak. */
  get failures(): number {
    return this.#failures;
  }

  /** The upper bound of the delay for the given streak length (0 → 0 ms). */
  ceilingMs(failures: number): number {
    if (failures <= 0) return 0;
    const exp = Math.min(failures - 1, 40);
    return Math.min(this.#o.maxIntervalMs, this.#o.intervalMs * 2 ** exp);
  }

  /** A dial failed: returns the delay before the next dial, ms. */
  afterDialFailure(): number {
    this.#failures++;
    return Math.floor(this.#o.random() * this.ceilingMs(this.#failures));
  }

  /**
   * A session ended after `upMs`. Returns the delay before the next dial, ms:
   * under `min(intervalMs, 1 s)` after a stable session (or the first loss of
   * a streak), the streak's full jitter otherwise.
   */
  afterSessionLoss(upMs: number): number {
    if (upMs >= this.#o.stableAfterMs) this.#failures = 0;
    const ceiling = this.#failures === 0 ? Math.min(this.#o.intervalMs, FIRST_REDIAL_JITTER_MS) : this.ceilingMs(this.#failures);
    const delay = Math.floor(this.#o.random() * ceiling);
    this.#failures++;
    return delay;
  }

  reset(): void {
    this.#failures = 0;
  }
}
