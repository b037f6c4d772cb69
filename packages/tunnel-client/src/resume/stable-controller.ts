// The controller a resumed request's caller holds from the first head to
// the end: each attempt is its own dispatch with its own controller, and the
// caller's pause, resume and abort must reach the live one (a reader that
// paused the first attempt is still paused on the next).
import type { Dispatcher } from 'undici';

/** The controller the caller holds for the whole request: pause, resume and abort reach the current attempt's. */
export class StableController implements Dispatcher.DispatchController {
  #target: Dispatcher.DispatchController | undefined;
  #paused = false;
  #reason: Error | null = null;
  readonly #onAbort: (reason: Error) => void;

  constructor(onAbort: (reason: Error) => void) {
    this.#onAbort = onAbort;
  }

  set target(c: Dispatcher.DispatchController | undefined) {
    this.#target = c;
    if (c !== undefined && this.#paused) c.pause();
  }

  get aborted(): boolean {
    return this.#reason !== null;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#reason;
  }
  get rawHeaders(): NonNullable<Dispatcher.DispatchController['rawHeaders']> | null {
    return this.#target?.rawHeaders ?? null;
  }
  get rawTrailers(): NonNullable<Dispatcher.DispatchController['rawTrailers']> | null {
    return this.#target?.rawTrailers ?? null;
  }
  pause(): void {
    this.#paused = true;
    this.#target?.pause();
  }
  resume(): void {
    this.#paused = false;
    this.#target?.resume();
  }
  abort(reason: Error): void {
    if (this.#reason !== null) return;
    this.#reason = reason ?? new Error('aborted');
    this.#onAbort(this.#reason);
  }
  /** Aborts the current attempt's stream (after the caller aborted). */
  abortTarget(reason: Error): void {
    this.#target?.abort(reason);
  }
}
