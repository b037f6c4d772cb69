import { MuxError } from './errors.ts';
import { INITIAL_STREAM_WINDOW } from './frame.ts';

/** Options of a yamux {@link Session}. Every duration is in milliseconds, every size in bytes. */
export interface SessionOptions {
  /** true for the dialing side (odd stream IDs), false for the accepting side (even). Required. */
  client: boolean;
  /** Inbound streams received but not yet accepted; beyond this the new stream is RST. Default 256. */
  acceptBacklog?: number;
  /** Open streams, both directions; beyond this `open()` throws and inbound SYNs are RST. Default 10_000. */
  maxConcurrentStreams?: number;
  /** Interval between keepalive pings (ms); 0 disables keepalive. Default 30_000. */
  keepAliveIntervalMs?: number;
  /** A ping not answered within this closes the session with PT_ERR_MUX_KEEPALIVE_TIMEOUT (ms). Default 10_000. */
  keepAliveTimeoutMs?: number;
  /** SYN not ACKed within this → the stream errors PT_ERR_MUX_OPEN_TIMEOUT and is RST (ms). Default 30_000. */
  streamOpenTimeoutMs?: number;
  /**
   * After our FIN on a stream the peer opened (our answer is complete), wait this long for the
   * peer's FIN, then RST (ms). Default 60_000. A stream we opened has no such deadline: our FIN
   * ends our request, and its answer may take hours (a WATCH); the application decides when to give up.
   */
  streamCloseTimeoutMs?: number;
  /**
   * Per-stream receive window (bytes), >= 262_144 (the spec's initial window). Without
   * {@link autoTuneWindow} every stream gets this window, advertised by a window update on
   * open/accept; with it, this is the cap the window may grow to. Default 262_144.
   */
  maxStreamWindowBytes?: number;
  /**
   * Grow each stream's receive window from the spec's 256 KiB towards `maxStreamWindowBytes`
   * while the sender is evidently window-limited: when half the window was consumed within two
   * round trips (RTT from the session's pings; one ping is sent if none was measured yet), the
   * window doubles. A paused reader never grows its window. No effect unless
   * `maxStreamWindowBytes` is above 262_144. Default false (fixed window).
   */
  autoTuneWindow?: boolean;
  /**
   * What auto-tuning may add to the receive windows of all the session's streams together
   * (bytes): a window grows past the spec's 256 KiB only while the session's total growth
   * stays within this, and a closed stream's growth is returned to the session. So the data
   * a session can be sent without its readers reading is at most
   * `open streams × 262_144 + sessionWindowGrowthBytes`, whatever `maxStreamWindowBytes`
   * is; one stream alone still grows to `maxStreamWindowBytes` when this allows it. 0: no
   * session-wide cap (each stream up to `maxStreamWindowBytes`). Default 0.
   */
  sessionWindowGrowthBytes?: number;
  /** Largest data frame sent (bytes); streams take turns frame by frame. Default 65_536. */
  maxFrameBytes?: number;
  /**
   * An accepted stream's ACK (with its window announcement) rides on the first frame
   * the stream sends (ms): its response data, its FIN or a window update, so a
   * request answered within this costs the peer no frame, write and wake-up of its
   * own for the ACK. Sent on its own when nothing went out by then. 0 sends it at
   * accept, as hashicorp/yamux does. Default 20.
   */
  ackDelayMs?: number;
  /** Default deadline of `close()` and of flushing the final GoAway (ms). Default 5_000. */
  goAwayTimeoutMs?: number;
  /**
   * Pings from the peer answered per second, on average (pings/s): a token bucket of
   * {@link pingBurst} tokens refilled at this rate. A ping beyond it gets no pong (the
   * peer's own ping times out) and is counted in `SessionStats.pingsDropped`, so a peer's
   * ping flood costs neither output nor memory. Independently, at most 64 pongs wait for
   * a transport that does not drain; pings beyond that are dropped and counted the same
   * way. An honest peer pings once per keepalive interval (30 s by default here and in
   * hashicorp/yamux). Default 50.
   */
  maxPingsPerSecond?: number;
  /** Pings from the peer answered back to back before {@link maxPingsPerSecond} applies (pings). Default 50. */
  pingBurst?: number;
}

/** Resolved options, every field present. */
export type ResolvedSessionOptions = Required<SessionOptions>;

/** Defaults for every optional {@link SessionOptions} field. */
export const defaultSessionOptions: Required<Omit<SessionOptions, 'client'>> = Object.freeze({
  acceptBacklog: 256,
  maxConcurrentStreams: 10_000,
  keepAliveIntervalMs: 30_000,
  keepAliveTimeoutMs: 10_000,
  streamOpenTimeoutMs: 30_000,
  streamCloseTimeoutMs: 60_000,
  maxStreamWindowBytes: INITIAL_STREAM_WINDOW,
  autoTuneWindow: false,
  sessionWindowGrowthBytes: 0,
  maxFrameBytes: 65_536,
  ackDelayMs: 20,
  goAwayTimeoutMs: 5_000,
  maxPingsPerSecond: 50,
  pingBurst: 50,
});

const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_UINT32 = 2 ** 32 - 1;

function fail(name: string, why: string): never {
  throw new MuxError('PT_ERR_MUX_CONFIG', `invalid session option ${name}: ${why}`);
}

type NumericOption = {
  [K in keyof typeof defaultSessionOptions]: (typeof defaultSessionOptions)[K] extends number ? K : never;
}[keyof typeof defaultSessionOptions];

function int(o: SessionOptions, name: NumericOption, min: number, max: number): void {
  const v = o[name];
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(name, `must be an integer, got ${String(v)}`);
  if (v < min || v > max) fail(name, `must be between ${min} and ${max}, got ${v}`);
}

/** Throws MuxError `PT_ERR_MUX_CONFIG` naming the first invalid option. */
export function verifySessionOptions(o: SessionOptions): void {
  if (o === null || typeof o !== 'object') fail('options', 'must be an object');
  if (typeof o.client !== 'boolean') fail('client', 'must be a boolean');
  int(o, 'acceptBacklog', 1, MAX_UINT32);
  int(o, 'maxConcurrentStreams', 1, MAX_UINT32);
  int(o, 'keepAliveIntervalMs', 0, MAX_TIMER_MS);
  int(o, 'keepAliveTimeoutMs', 1, MAX_TIMER_MS);
  int(o, 'streamOpenTimeoutMs', 1, MAX_TIMER_MS);
  int(o, 'streamCloseTimeoutMs', 1, MAX_TIMER_MS);
  int(o, 'maxStreamWindowBytes', INITIAL_STREAM_WINDOW, MAX_UINT32);
  if (o.autoTuneWindow !== undefined && typeof o.autoTuneWindow !== 'boolean') {
    fail('autoTuneWindow', `must be a boolean, got ${String(o.autoTuneWindow)}`);
  }
  int(o, 'sessionWindowGrowthBytes', 0, Number.MAX_SAFE_INTEGER);
  int(o, 'maxFrameBytes', 1, 16 * 1024 * 1024);
  int(o, 'ackDelayMs', 0, MAX_TIMER_MS);
  int(o, 'goAwayTimeoutMs', 1, MAX_TIMER_MS);
  int(o, 'maxPingsPerSecond', 1, MAX_UINT32);
  int(o, 'pingBurst', 1, MAX_UINT32);
}

/** Verifies and fills in defaults. */
export function resolveSessionOptions(o: SessionOptions): ResolvedSessionOptions {
  verifySessionOptions(o);
  const out: ResolvedSessionOptions = { ...defaultSessionOptions, client: o.client };
  for (const k of Object.keys(defaultSessionOptions) as (keyof typeof defaultSessionOptions)[]) {
    const v = o[k];
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
