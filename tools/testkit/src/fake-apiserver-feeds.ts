import type { ServerResponse } from 'node:http';
import type { ExpiredAnswer, LogHistory, WatchHistory } from './fake-apiserver-history.ts';
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

  /** Writes `text` to every open response (or those `only` picks); returns how many got it. */
  write(text: string, only?: (res: ServerResponse) => boolean): number {
    let n = 0;
    for (const res of this.#open) {
      if (only !== undefined && !only(res)) continue;
      res.write(text);
      n++;
    }
    return n;
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
  /** Writes `{"type":type,"object":obj}\n` to every open watch, flushed at once; returns how many watches got it. Default type `'ADDED'`. Not kept: a resumed watch does not get it again (see {@link change}). */
  emit(obj: unknown, type?: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'): number;
  /**
   * A change with a resourceVersion, as the real API server's: the next
   * resourceVersion (1001, 1002…; the pod list's is 1000) is stamped onto
   * `obj.metadata`, the event is kept (a watch from an older resourceVersion
   * is replayed what followed it) and written to every open watch. Returns
   * the resourceVersion. Default type `'ADDED'`.
   */
  change(obj: { metadata?: Record<string, unknown> } & Record<string, unknown>, type?: 'ADDED' | 'MODIFIED' | 'DELETED'): string;
  /** A BOOKMARK at the current resourceVersion to every open watch that asked (`allowWatchBookmarks=true`); returns how many got it. */
  bookmark(): number;
  /**
   * Forgets the kept changes (an etcd compaction): a watch from an older
   * resourceVersion is refused with 410 Expired — as the API server does, a
   * 200 with one ERROR event (`'event'`, default), or an HTTP 410 (`'status'`).
   */
  compact(answer?: ExpiredAnswer): void;
  /** The resourceVersion of the last change (1000 before any). */
  readonly resourceVersion: string;
  /** Ends every open watch (the chunked response completes normally). */
  end(): void;
  /** Open watches. */
  readonly active: number;
  /** Resolves once at least `n` watches are open (default 1; timeout default 5_000 ms). */
  waitForWatchers(n?: number, timeoutMs?: number): Promise<void>;
}

/** What a test does with the fake's followed logs (`GET …/pods/{name}/log?follow=true`). */
export interface LogsControl {
  /**
   * Writes `line + "\n"` to every follower, flushed at once (with
   * `timestamps=true`, `<at> line`); returns how many got it. `at` is the
   * line's RFC 3339 timestamp (default now); the line is kept for followers
   * that start with `sinceTime`.
   */
  write(line: string, at?: string): number;
  /** Ends every follower. */
  end(): void;
  readonly active: number;
  /** Resolves once at least `n` followers are open (default 1; timeout default 5_000 ms). */
  waitForFollowers(n?: number, timeoutMs?: number): Promise<void>;
}

export function watchControl(hub: FeedHub, history: WatchHistory): WatchControl {
  return {
    emit: (obj, type = 'ADDED') => hub.write(`${JSON.stringify({ type, object: obj })}\n`),
    change: (obj, type = 'ADDED') => history.change(obj, type),
    bookmark: () => history.bookmark(),
    compact: (answer = 'event') => history.compact(answer),
    get resourceVersion() {
      return String(history.resourceVersion);
    },
    end: () => hub.end(),
    get active() {
      return hub.active;
    },
    waitForWatchers: (n, timeoutMs) => hub.waitForActive(n, timeoutMs),
  };
}

export function logsControl(hub: FeedHub, history: LogHistory): LogsControl {
  return {
    write: (line, at) => history.write(line, at),
    end: () => hub.end(),
    get active() {
      return hub.active;
    },
    waitForFollowers: (n, timeoutMs) => hub.waitForActive(n, timeoutMs),
  };
}
