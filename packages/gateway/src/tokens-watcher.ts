import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';

/**
 * Watches a file's *directory* (so editors that write a temp file and rename
 * it over the original are seen) and calls `onChange` once per burst of
 * events, `debounceMs` after the last one.
 */
export class TokensWatcher {
  readonly #file: string;
  readonly #debounceMs: number;
  readonly #onChange: () => void;
  readonly #logger: Logger;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(file: string, debounceMs: number, onChange: () => void, logger: Logger) {
    this.#file = file;
    this.#debounceMs = debounceMs;
    this.#onChange = onChange;
    this.#logger = logger;
  }

  start(): void {
    if (this.#watcher) return;
    const name = basename(this.#file);
    this.#watcher = watch(dirname(this.#file), { persistent: false }, (_event, filename) => {
      if (filename !== null && filename.toString() !== name) return;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#onChange();
      }, this.#debounceMs);
      this.#timer.unref();
    });
    this.#watcher.on('error', (err) => this.#logger.error({ event: 'tokens_watch_error', err }, 'tokens file watch failed'));
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
