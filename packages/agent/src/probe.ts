import { connect } from 'node:net';

/** How a backoff wait ended. */
export type WaitOutcome = 'elapsed' | 'port-open' | 'aborted';

export interface WaitOptions {
  delayMs: number;
  /** Target of the TCP probe; absent → plain timer. */
  probe: { host: string; port: number } | undefined;
  /** Probe period, ms (±20 % jitter). 0 disables probing. */
  probeIntervalMs: number;
  /** The port was already seen refusing (the last dial got ECONNREFUSED). */
  refusing: boolean;
  signal: AbortSignal;
  random?: () => number;
  /** Called the first time a probe of this wait finds the port refusing (the gateway is gone). */
  onRefusing?: () => void;
}

/**
 * Waits this short are not probed: the dial comes soon anyway, and the
 * first re-dial after a lost session (within 1 s) would otherwise add a
 * connection per agent to the storm a replica's death starts.
 */
export const MIN_PROBED_WAIT_MS = 1_000;

/** One TCP connect attempt: 'open', 'refused', or 'other' (timeout, unreachable…). */
export function probePort(host: string, port: number, timeoutMs: number): Promise<'open' | 'refused' | 'other'> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => done('other'), timeoutMs);
    timer.unref();
    function done(r: 'open' | 'refused' | 'other'): void {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(r);
    }
    socket.once('connect', () => done('open'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : 'other'));
  });
}

/**
 * Waits `delayMs`, but ends early ('port-open') when the gateway's port goes
 * from refusing to accepting TCP connections. A port that accepts from the
 * first probe never shortens the wait: that gateway (or load balancer) is up
 * and failing at a higher level, so the backoff is honoured, and it is not
 * probed again in this wait (behind a load balancer, which always accepts,
 * every probe would only be one more connection for a replica to take).
 */
export async function waitBeforeDial(o: WaitOptions): Promise<WaitOutcome> {
  if (o.signal.aborted) return 'aborted';
  const random = o.random ?? Math.random;
  const deadline = Date.now() + o.delayMs;
  let refusing = o.refusing;
  let canProbe = o.probe !== undefined && o.probeIntervalMs > 0 && o.delayMs > MIN_PROBED_WAIT_MS;
  while (true) {
    const left = deadline - Date.now();
    if (left <= 0) return 'elapsed';
    const step = canProbe ? Math.min(left, Math.round(o.probeIntervalMs * (0.8 + 0.4 * random()))) : left;
    const slept = await sleep(step, o.signal);
    if (!slept) return 'aborted';
    if (!canProbe || o.probe === undefined || deadline - Date.now() <= 0) continue;
    const r = await probePort(o.probe.host, o.probe.port, Math.max(100, o.probeIntervalMs));
    if (o.signal.aborted) return 'aborted';
    if (r === 'refused' && !refusing) o.onRefusing?.();
    if (r === 'refused') refusing = true;
    else if (r === 'open' && refusing) return 'port-open';
    else if (r === 'open') canProbe = false;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    timer.unref();
    function onAbort(): void {
      clearTimeout(timer);
      resolve(false);
    }
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
