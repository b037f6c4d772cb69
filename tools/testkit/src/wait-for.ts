import { setTimeout as delay } from 'node:timers/promises';

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this long, in ms. Default 5_000. */
  timeoutMs?: number;
  /** Pause between polls, in ms. Default 10. */
  intervalMs?: number;
  /** What is awaited, for the timeout's error message. Default `'condition'`. */
  what?: string;
}

/**
 * Polls `cond` until it returns a truthy value (which is resolved) or the
 * deadline passes (rejects with an Error naming `what` and the last error
 * `cond` threw, if any). For observable conditions that have no event;
 * prefer an event when there is one.
 */
export async function waitFor<T>(cond: () => T | Promise<T>, opts: WaitForOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const intervalMs = opts.intervalMs ?? 10;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await cond();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'}`, lastError === undefined ? {} : { cause: lastError });
    }
    await delay(intervalMs);
  }
}
