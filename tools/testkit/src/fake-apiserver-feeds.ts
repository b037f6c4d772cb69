import type { ServerResponse } from 'node:http';
import { waitFor } from './wait-for.ts';

/**
 * The open long-running responses of one kind (watches, or followed logs):
 * a test pushes a chunk and every open response writes it at once.
 */
export class FeedHub {
  readonly #open = new Set<ServerResponse>();
  readonly #what: string;

  constructor(what: string) {
    this.#what = what;
  }

  /** Adopts `res` (head already sent) until it closes. */
  add(res: ServerResponse): void {
    this.#open.add(res);
    res.once('close', () => this.#open.delete(res));
  }

  /** Writes `text` to every open response; returns how many got it. */
  write(text: string): number {
    for (const res of this.#open) res.write(text);
    return this.#open.size;
  }

  /** Ends every open response. */
  end(): void {
    for (const res of this.#open) res.end();
    this.#open.clear();
  }

  get active(): number {
    return this.#open.size;
  }

  /** Resolves once at least `n` responses are open. */
  async waitForActive(n = 1, timeoutMs = 5_000): Promise<void> {
    await waitFor(() => this.#open.size >= n, { timeoutMs, what: `${n} open ${this.#what}` });
  }
}

/** What a test does with the fake's WATCH responses (`GET …/pods?watch=1`). */
export interface WatchControl {
  /** Writes `{"type":type,"object":obj}\n` to every open watch, flushed at once; returns how many watches got it. Default type `'ADDED'`. */
  emit(obj: unknown, type?: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'): number;
  /** Ends every open watch (the chunked response completes normally). */
  end(): void;
  /** Open watches. */
  readonly active: number;
  /** Resolves once at least `n` watches are open (default 1; timeout default 5_000 ms). */
  waitForWatchers(n?: number, timeoutMs?: number): Promise<void>;
}

/** What a test does with the fake's followed logs (`GET …/pods/{name}/log?follow=true`). */
export interface LogsControl {
  /** Writes `line + "\n"` to every follower, flushed at once; returns how many got it. */
  write(line: string): number;
  /** Ends every follower. */
  end(): void;
  readonly active: number;
  /** Resolves once at least `n` followers are open (default 1; timeout default 5_000 ms). */
  waitForFollowers(n?: number, timeoutMs?: number): Promise<void>;
}

export function watchControl(hub: FeedHub): WatchControl {
  return {
    emit: (obj, type = 'ADDED') => hub.write(`${JSON.stringify({ type, object: obj })}\n`),
    end: () => hub.end(),
    get active() {
      return hub.active;
    },
    waitForWatchers: (n, timeoutMs) => hub.waitForActive(n, timeoutMs),
  };
}

export function logsControl(hub: FeedHub): LogsControl {
  return {
    write: (line) => hub.write(`${line}\n`),
    end: () => hub.end(),
    get active() {
      return hub.active;
    },
    waitForFollowers: (n, timeoutMs) => hub.waitForActive(n, timeoutMs),
  };
}
