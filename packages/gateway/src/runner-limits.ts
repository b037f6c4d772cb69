// Per-runner fairness at the gateway (issue 9): how many streams a runner may
// have open at once (across all its routes and sessions) and how many
// requests it may start per second — over either, a 429 Status with
// Retry-After — and how many bytes per second it may pull through the
// tunnel. Bandwidth is also shared per runner by the mux itself (streams
// carry their runner as scheduling group); the byte rate is for when equal
// shares are not enough: on a host whose CPU is the bottleneck, a saturating
// runner delays everyone's small requests in every process's queues, and
// only taking less keeps them short.
import { TokenBucket } from '@pipeops/tunnel-mux';

/** One runner's limits. `0` means unlimited. */
export interface RunnerLimits {
  /** Streams (requests, watches, exec sessions) open at once. */
  maxStreams: number;
  /** Requests started per second, sustained (token bucket refill). */
  requestsPerSecond: number;
  /** Requests that may start at once above the sustained rate (bucket size). `0` → twice `requestsPerSecond`. */
  burst: number;
  /**
   * Response bytes per second from the cluster, all the runner's streams
   * together (and request bytes on `/ws/runner`), enforced through the
   * tunnel's flow control: the agent is granted window credit no faster.
   */
  bytesPerSecond: number;
}

/** Gateway-wide defaults (overridden per runner in the tokens file, `limits:`). */
export const defaultRunnerLimits: Readonly<RunnerLimits> = Object.freeze({ maxStreams: 1_000, requestsPerSecond: 0, burst: 0, bytesPerSecond: 0 });

/** Names of the limits as the tokens file and the config spell them. */
export const RUNNER_LIMIT_KEYS = {
  max_streams: 'maxStreams',
  requests_per_second: 'requestsPerSecond',
  burst: 'burst',
  bytes_per_second: 'bytesPerSecond',
} as const;

/** The limits a tokens-file `limits:` mapping sets (snake_case keys); throws an Error naming the first invalid key. */
export function verifyRunnerLimits(value: unknown, where: string): Partial<RunnerLimits> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${where}: must be a mapping with ${Object.keys(RUNNER_LIMIT_KEYS).join(', ')}`);
  const out: Partial<RunnerLimits> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const field = (RUNNER_LIMIT_KEYS as Record<string, keyof RunnerLimits>)[k];
    if (field === undefined) throw new Error(`${where}: unknown key ${JSON.stringify(k)} (expected ${Object.keys(RUNNER_LIMIT_KEYS).join(', ')})`);
    const fractional = field === 'requestsPerSecond';
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!fractional && !Number.isInteger(v))) {
      throw new Error(`${where}.${k}: must be a number >= 0 (0 = unlimited)${fractional ? '' : ', an integer'}`);
    }
    out[field] = v;
  }
  return out;
}

/** A granted slot: release it when the stream closes (idempotent). */
export interface RunnerSlot {
  release(): void;
}
/** A refusal: the 429 message and the `Retry-After` seconds. */
export interface RunnerLimited {
  limited: 'stream_limit' | 'rate_limit';
  retryAfterSeconds: number;
  message: string;
}

interface RunnerState {
  open: number;
  requests: TokenBucket | undefined;
}

/**
 * Counts each runner's open streams and its request rate, and holds each
 * runner's byte-rate pacer. `now` is injected for tests (ms, monotonic).
 * Stream and rate state is dropped when a runner has nothing open and a full
 * bucket, so that map holds only active runners; pacers are kept per runner
 * id and rate (runner ids come from the tokens file: a bounded set).
 */
export class RunnerLimiter {
  readonly #runners = new Map<string, RunnerState>();
  readonly #pacers = new Map<string, { rate: number; bucket: TokenBucket }>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Runners with stream or rate state (for tests). */
  get size(): number {
    return this.#runners.size;
  }

  /** Streams `runnerId` has open now. */
  open(runnerId: string): number {
    return this.#runners.get(runnerId)?.open ?? 0;
  }

  /** `[runner id, open streams]` of every runner with streams open. */
  *openByRunner(): Iterable<[string, number]> {
    for (const [id, s] of this.#runners) if (s.open > 0) yield [id, s.open];
  }

  /** Takes a slot for one new request, or says why not. */
  acquire(runnerId: string, limits: Readonly<RunnerLimits>): RunnerSlot | RunnerLimited {
    let s = this.#runners.get(runnerId);
    if (s === undefined) {
      s = { open: 0, requests: undefined };
      this.#runners.set(runnerId, s);
    }
    if (limits.maxStreams > 0 && s.open >= limits.maxStreams) {
      this.#forgetIdle(runnerId, s);
      return {
        limited: 'stream_limit',
        retryAfterSeconds: 1,
        message: `runner "${runnerId}" has ${String(s.open)} requests open, its limit (max_streams ${String(limits.maxStreams)}); retry when one ends`,
      };
    }
    if (limits.requestsPerSecond > 0) {
      s.requests ??= new TokenBucket(limits.requestsPerSecond, limits.burst > 0 ? limits.burst : Math.max(1, limits.requestsPerSecond * 2), this.#now);
      if (!s.requests.take()) {
        const wait = Math.max(1, Math.ceil(s.requests.waitMs(1) / 1000));
        return {
          limited: 'rate_limit',
          retryAfterSeconds: wait,
          message: `runner "${runnerId}" is over its request rate (requests_per_second ${String(limits.requestsPerSecond)}); retry after ${String(wait)} s`,
        };
      }
    }
    s.open++;
    let released = false;
    const state = s;
    return {
      release: () => {
        if (released) return;
        released = true;
        state.open--;
        this.#forgetIdle(runnerId, state);
      },
    };
  }

  /**
   * The runner's byte-rate pacer (one per runner, shared by all its streams),
   * or undefined when `bytesPerSecond` is 0. A burst of one second's worth.
   */
  pacer(runnerId: string, limits: Readonly<RunnerLimits>): TokenBucket | undefined {
    if (limits.bytesPerSecond <= 0) return undefined;
    const known = this.#pacers.get(runnerId);
    if (known !== undefined && known.rate === limits.bytesPerSecond) return known.bucket;
    const bucket = new TokenBucket(limits.bytesPerSecond, limits.bytesPerSecond, this.#now);
    this.#pacers.set(runnerId, { rate: limits.bytesPerSecond, bucket });
    return bucket;
  }

  #forgetIdle(runnerId: string, s: RunnerState): void {
    if (s.open === 0 && (s.requests === undefined || s.requests.full) && this.#runners.get(runnerId) === s) this.#runners.delete(runnerId);
  }
}

/** True when `r` is a refusal. */
export function isLimited(r: RunnerSlot | RunnerLimited): r is RunnerLimited {
  return 'limited' in r;
}
