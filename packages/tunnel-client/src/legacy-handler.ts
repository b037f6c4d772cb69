// Node's built-in `fetch` (the undici bundled with Node: 7.x in Node 24)
// still dispatches with undici's older handler API (onConnect, onHeaders,
// onData, onComplete, onError), which undici 8 — the one this package is
// built on — no longer takes: handed `tunnel.dispatcher`, the global fetch
// failed with UND_ERR_INVALID_ARG "invalid onRequestStart method". The
// dispatcher takes such a handler by adapting it here to the controller API.
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';

/** undici's handler API before the controller (what Node's built-in fetch dispatches with). */
export interface LegacyDispatchHandler {
  onConnect?(abort: (err?: Error) => void, context?: unknown): void;
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(rawTrailers: Buffer[] | null): void;
  onError?(err: Error): void;
  onUpgrade?(statusCode: number, rawHeaders: Buffer[], socket: Duplex): void;
  onResponseStarted?(): void;
}

/** True for a handler of the older API only (it has none of the controller API's methods). */
export function isLegacyHandler(h: object): h is LegacyDispatchHandler {
  const x = h as Record<string, unknown>;
  return (
    typeof x.onRequestStart !== 'function' &&
    typeof x.onResponseStart !== 'function' &&
    (typeof x.onHeaders === 'function' || typeof x.onConnect === 'function' || typeof x.onError === 'function')
  );
}

/** The same handler on the controller API: pause/resume, abort, raw headers and trailers as the older API had them. */
export function fromLegacyHandler(h: LegacyDispatchHandler): Dispatcher.DispatchHandler {
  return {
    onRequestStart(controller, context) {
      h.onConnect?.((err) => controller.abort(err ?? new Error('aborted')), context);
    },
    onRequestUpgrade(_controller, statusCode, headers, socket) {
      h.onUpgrade?.(statusCode, rawHeaders(headers), socket);
    },
    onResponseStart(controller, statusCode, headers, statusMessage) {
      h.onResponseStarted?.();
      if (h.onHeaders?.(statusCode, rawHeaders(headers), () => controller.resume(), statusMessage ?? '') === false) controller.pause();
    },
    onResponseData(controller, chunk) {
      if (h.onData?.(chunk) === false) controller.pause();
    },
    onResponseEnd(_controller, trailers) {
      h.onComplete?.(rawHeaders(trailers));
    },
    onResponseError(_controller, err) {
      h.onError?.(err);
    },
  };
}

/** Parsed headers back to the older API's flat [name, value, …] list of Buffers (a repeated header once per value). */
function rawHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Buffer[] {
  const raw: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) raw.push(Buffer.from(name, 'latin1'), Buffer.from(String(v), 'latin1'));
  }
  return raw;
}
