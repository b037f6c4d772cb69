// Opening the stream of one exchange, bounded: the one place that races the
// open against the client going away, and arms the response-head deadline.
import type { Duplex } from 'node:stream';
import { HeadTimeoutError } from './kube-status.ts';

const ONCE = { once: true } as const;

/**
 * `open()`, rejected with the signal's reason (an Error) if `signal` aborts
 * first; a stream that arrives after the abort is destroyed, and so is one
 * whose open had already resolved when the abort came in the same tick.
 * One promise and one listener per call (no Promise.race, no async frame:
 * this runs for every request).
 */
export function openUnlessAborted(open: () => Promise<Duplex>, signal: AbortSignal): Promise<Duplex> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, ONCE);
    let opening: Promise<Duplex>;
    try {
      opening = open();
    } catch (err) {
      signal.removeEventListener('abort', onAbort);
      settled = true;
      reject(err);
      return;
    }
    opening.then(
      (stream) => {
        signal.removeEventListener('abort', onAbort);
        if (settled || signal.aborted) {
          stream.destroy();
          onAbort();
          return;
        }
        settled = true;
        resolve(stream);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) return;
        settled = true;
        reject(err);
      },
    );
  });
}

/**
 * Arms a response-head deadline: after `ms` (0 = never), `expired` is called
 * with a {@link HeadTimeoutError} (a 504). Returns the function that disarms
 * it, called when the head arrived or the exchange ended.
 */
export function headDeadline(ms: number, expired: (err: HeadTimeoutError) => void): () => void {
  if (ms <= 0) return () => {};
  const timer = setTimeout(() => expired(new HeadTimeoutError(ms)), ms);
  return () => clearTimeout(timer);
}

/** One exchange's stream being opened, see {@link openExchange}. */
export interface OpeningExchange {
  /** The stream, or the reason the exchange was cut: `gone`'s, or a {@link HeadTimeoutError}. */
  stream: Promise<Duplex>;
  /** Aborts when `gone` aborts or the head deadline passes: hand it to what waits for the head. */
  signal: AbortSignal;
  /** Disarms the head deadline: call it when the head arrived or the exchange ended. */
  disarm: () => void;
}

/**
 * Opens the stream of one exchange, bounded: `open()` raced against `gone`
 * (the client went away or cancelled) and against the response-head
 * deadline of `headTimeoutMs` (0 = none), both on one signal (not
 * AbortSignal.any, which costs a WeakRef and a finalization-registry entry
 * per exchange).
 */
export function openExchange(open: () => Promise<Duplex>, gone: AbortSignal, headTimeoutMs: number): OpeningExchange {
  const either = new AbortController();
  if (gone.aborted) either.abort(gone.reason);
  else gone.addEventListener('abort', () => either.abort(gone.reason), ONCE);
  const disarm = headDeadline(headTimeoutMs, (err) => either.abort(err));
  return { stream: openUnlessAborted(open, either.signal), signal: either.signal, disarm };
}

/** The abort reason of `signal` as an Error (a DOMException `AbortError` when it is not one). */
export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new DOMException('This operation was aborted', 'AbortError');
}
