// Per-runner fairness at the gateway (issue 9): how many streams a runner may
// have open at once (across all its routes and sessions) and how many
// requests it may start per second. Over either → a 429 Status with
// Retry-After. Bandwidth is shared per runner by the mux itself (streams
// carry their runner as scheduling group), so these limits only bound what a
// runner may hold and how fast it may ask.

/** One runner's limits. `0` means unlimited. */
export interface RunnerLimits {
  /** Streams (requests, watches, exec sessions) open at once. */
  maxStreams: number;
  /** Requests started per second, sustained (token bucket refill). */
  requestsPerSecond: number;
  /** Requests that may start at once above the sustained rate (bucket size). `0` → twice `requestsPerSecond`. */
  burst: number;
}

/** Gateway-wide defaults (overridden per runner in the tokens file, `limits:`). */
export const defaultRunnerLimits: Readonly<RunnerLimits> = Object.freeze({ maxStreams: 1_000, requestsPerSecond: 0, burst: 0 });

/** Names of the limits as the tokens file and the config spell them. */
export const RUNNER_LIMIT_KEYS = { max_streams: 'maxStreams', requests_per_second: 'requestsPerSecond', burst: 'burst' } as const;

/** The limits a tokens-file `limits:` mapping sets (snake_case keys); throws an Error naming the first invalid key. */
export function verifyRunnerLimits(value: unknown, where: string): Partial<RunnerLimits> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${where}: must be a mapping with ${Object.keys(RUNNER_LIMIT_KEYS).join(', ')}`);
  const out: Partial<RunnerLimits> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const field = (RUNNER_LIMIT_KEYS as Record<string, keyof RunnerLimits>)[k];
    if (field === undefined) throw new Error(`${where}: unknown key ${JSON.stringify(k)} (expected ${Object.keys(RUNNER_LIMIT_KEYS).join(', ')})`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (field !== 'requestsPerSecond' && !Number.isInteger(v))) {
      throw new Error(`${where}.${k}: must be a number >= 0 (0 = unlimited)${field !== 'requestsPerSecond' ? ', an integer' : ''}`);
    }
    out[field] = v;
  }
  return out;
}

/** A granted slot: release it when the stream closes (idempotent). */
export interface RunnerSlot { release(): void }
/** A refusal: the 429 message and the `Retry-After` seconds. */
export interface RunnerLimited { limited: 'stream_limit' | 'rate_limit'; retryAfterSeconds: number; message: string }

interface RunnerState { open: number; tokens: number; at: number }

/**
 * Counts each runner's open streams and its request rate. `now` is injected
 * for tests (ms, monotonic). State is dropped when a runner has nothing open
 * and a full bucket, so the map holds only active runners.
 */
export class RunnerLimiter {
  readonly #runners = new Map<string, RunnerState>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Runners with state (for tests and metrics). */
  get size(): number { return this.#runners.size; }

  /** Streams `runnerId` has open now. */
  open(runnerId: string): number { return this.#runners.get(runnerId)?.open ?? 0; }

  /** `[runner id, open streams]` of every runner with streams open. */
  *openByRunner(): Iterable<[string, number]> {
    for (const [id, s] of this.#runners) if (s.open > 0) yield [id, s.open];
  }

  /** Takes a slot for one new request, or says why not. */
  acquire(runnerId: string, limits: Readonly<RunnerLimits>): RunnerSlot | RunnerLimited {
    const now = this.#now();
    let s = this.#runners.get(runnerId);
    const capacity = limits.burst > 0 ? limits.burst : Math.max(1, limits.requestsPerSecond * 2);
    if (s === undefined) {
      s = { open: 0, tokens: capacity, at: now };
      this.#runners.set(runnerId, s);
    } else if (limits.requestsPerSecond > 0) {
      s.tokens = Math.min(capacity, s.tokens + ((now - s.at) / 1000) * limits.requestsPerSecond);
      s.at = now;
    }
    if (limits.maxStreams > 0 && s.open >= limits.maxStreams) {
      this.#forgetIdle(runnerId, s, capacity);
      return { limited: 'stream_limit', retryAfterSeconds: 1, message: `runner "${runnerId}" has ${String(s.open)} requests open, its limit (max_streams ${String(limits.maxStreams)}); retry when one ends` };
    }
    if (limits.requestsPerSecond > 0) {
      if (s.tokens < 1) {
        const wait = Math.max(1, Math.ceil((1 - s.tokens) / limits.requestsPerSecond));
        return { limited: 'rate_limit', retryAfterSeconds: wait, message: `runner "${runnerId}" is over its request rate (requests_per_second ${String(limits.requestsPerSecond)}); retry after ${String(wait)} s` };
      }
      s.tokens -= 1;
    }
    s.open++;
    let released = false;
    const state = s;
    return {
      release: () => {
        if (released) return;
        released = true;
        state.open--;
        this.#forgetIdle(runnerId, state, capacity);
      },
    };
  }

  #forgetIdle(runnerId: string, s: RunnerState, capacity: number): void {
    if (s.open === 0 && s.tokens >= capacity && this.#runners.get(runnerId) === s) this.#runners.delete(runnerId);
  }
}

/** True when `r` is a refusal. */
export function isLimited(r: RunnerSlot | RunnerLimited): r is RunnerLimited {
  return 'limited' in r;
}
