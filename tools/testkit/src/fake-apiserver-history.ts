// What makes the fake's WATCH and followed logs resumable, as the real API
// server's are: watch events with resourceVersions, kept in a bounded
// history a watch from an older resourceVersion is replayed from (410 Expired
// when it is older than the history, as after an etcd compaction), BOOKMARKs
// for the watches that asked, and followed log lines with timestamps a
// follow with `sinceTime` is replayed from (to the second, as the kubelet).
import type { ServerResponse } from 'node:http';
import type { FeedHub } from './fake-apiserver-feeds.ts';

/** The resourceVersion of the fake's lists before any change. */
export const FAKE_LIST_RESOURCE_VERSION = 1000;
/** Changes kept for replay; older ones are forgotten (a watch from before them gets 410). */
const MAX_HISTORY = 10_000;

/** A Kubernetes `Status` failure object. */
function status(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** How a watch from a resourceVersion older than the history is refused. */
export type ExpiredAnswer = 'event' | 'status';

/** Where a new watch starts: replay from the history, or the refusal. */
export type WatchStart = { ok: true; replay: string[] } | { ok: false; code: 400 | 410; answer: ExpiredAnswer; body: object };

/** The fake's watch events with resourceVersions. */
export class WatchHistory {
  readonly #hub: FeedHub;
  #rv = FAKE_LIST_RESOURCE_VERSION;
  /** The history holds every change after this resourceVersion. */
  #oldest = FAKE_LIST_RESOURCE_VERSION;
  #events: Array<{ rv: number; line: string }> = [];
  #expired: ExpiredAnswer = 'event';
  readonly #bookmarks = new WeakSet<ServerResponse>();

  constructor(hub: FeedHub) {
    this.#hub = hub;
  }

  /** The current resourceVersion (of the last change; the lists' before any). */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** Where a watch from `resourceVersion` (unset or "0": from now) starts. */
  start(resourceVersion: string | null): WatchStart {
    if (resourceVersion === null || resourceVersion === '' || resourceVersion === '0') return { ok: true, replay: [] };
    const from = Number(resourceVersion);
    if (!Number.isSafeInteger(from) || from < 0) {
      return { ok: false, code: 400, answer: 'status', body: status(400, 'BadRequest', `invalid resource version: ${resourceVersion}`) };
    }
    if (from < this.#oldest) {
      return { ok: false, code: 410, answer: this.#expired, body: status(410, 'Expired', `too old resource version: ${from} (${this.#oldest})`) };
    }
    return { ok: true, replay: this.#events.filter((e) => e.rv > from).map((e) => e.line) };
  }

  /** `res` (an open watch) asked for BOOKMARK events. */
  wantsBookmarks(res: ServerResponse): void {
    this.#bookmarks.add(res);
  }

  /** A change: the next resourceVersion is stamped onto `obj.metadata`, kept, and written to every open watch. */
  change(obj: { metadata?: Record<string, unknown> } & Record<string, unknown>, type: 'ADDED' | 'MODIFIED' | 'DELETED'): string {
    const rv = ++this.#rv;
    const object = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
    const line = `${JSON.stringify({ type, object })}\n`;
    this.#events.push({ rv, line });
    if (this.#events.length > MAX_HISTORY) this.#oldest = this.#events.shift()?.rv ?? this.#oldest;
    this.#hub.write(line);
    return String(rv);
  }

  /** A BOOKMARK at the current resourceVersion to every open watch that asked for them; returns how many. */
  bookmark(): number {
    const line = `${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: String(this.#rv) } } })}\n`;
    return this.#hub.write(line, (res) => this.#bookmarks.has(res));
  }

  /** Forgets the history (an etcd compaction): a watch from before now is refused with 410, as `answer` says. */
  compact(answer: ExpiredAnswer): void {
    this.#oldest = this.#rv;
    this.#events = [];
    this.#expired = answer;
  }
}

/** Nanoseconds since the epoch of an RFC 3339 timestamp (fraction up to 9 digits), or undefined. */
function nanos(ts: string): bigint | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(ts);
  if (m === null) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  return Number.isFinite(ms) ? BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0')) : undefined;
}

/** The followed log's lines with their timestamps. */
export class LogHistory {
  readonly #hub: FeedHub;
  #lines: Array<{ at: string; ns: bigint; text: string }> = [];
  readonly #timestamps = new WeakSet<ServerResponse>();

  constructor(hub: FeedHub) {
    this.#hub = hub;
  }

  /**
   * Where a follow with `sinceTime` starts: the lines from that second on
   * (the kubelet reads sinceTime to the second), as written for a follower
   * with or without timestamps. Undefined when `sinceTime` is not RFC 3339.
   */
  start(sinceTime: string | null, timestamps: boolean): string[] | undefined {
    if (sinceTime === null) return [];
    const since = nanos(sinceTime);
    if (since === undefined) return undefined;
    const second = since - (since % 1_000_000_000n);
    return this.#lines.filter((l) => l.ns >= second).map((l) => this.#format(l, timestamps));
  }

  /** `res` (an open follower) asked for `timestamps=true`. */
  wantsTimestamps(res: ServerResponse): void {
    this.#timestamps.add(res);
  }

  /** A log line written at `at` (RFC 3339; default now) to every follower; returns how many got it. */
  write(text: string, at: string = new Date().toISOString()): number {
    const ns = nanos(at);
    if (ns === undefined) throw new Error(`not an RFC 3339 timestamp: ${at}`);
    const line = { at, ns, text };
    this.#lines.push(line);
    if (this.#lines.length > MAX_HISTORY) this.#lines.shift();
    const stamped = this.#hub.write(this.#format(line, true), (res) => this.#timestamps.has(res));
    return stamped + this.#hub.write(this.#format(line, false), (res) => !this.#timestamps.has(res));
  }

  #format(line: { at: string; text: string }, timestamps: boolean): string {
    return timestamps ? `${line.at} ${line.text}\n` : `${line.text}\n`;
  }
}
