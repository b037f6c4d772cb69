// What a resumable JSON WATCH has delivered: the last resourceVersion the
// caller saw (from every event, BOOKMARKs included; for kubectl's Table
// watches, `application/json;as=Table;v=1;g=meta.k8s.io`, the Table's own
// metadata or, failing that, its last row's object), and whether resuming
// from it is sound. Events are passed on whole, never split, so a cut
// mid-event loses nothing: the resumed stream sends that event again.
//
// When is a resourceVersion a sound resume point? A watch from an explicit
// resourceVersion R sends the changes after R, in order: every event's is.
// A watch without one (or from "0"), or with `sendInitialEvents=true`, starts
// with synthetic ADDED events for the objects that exist, in no order of
// resourceVersion: resuming from one of those would replay older changes. It
// becomes sound at the first BOOKMARK (for initial events, the one marked
// `k8s.io/initial-events-end`), MODIFIED or DELETED event.
import { JsonEventSplitter, type Piece } from './json-event-splitter.ts';

/** Largest watch event held while it is incomplete (bytes); a larger one stops the tracking (the watch is then not resumed). */
export const MAX_WATCH_EVENT_BYTES = 16 * 1024 * 1024;

const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

interface ParsedEvent {
  type?: unknown;
  object?: {
    metadata?: { resourceVersion?: unknown; annotations?: Record<string, unknown> };
    rows?: Array<{ object?: { metadata?: { resourceVersion?: unknown } } }>;
  };
}

/** The resourceVersion an event carries: its object's, or (a Table without one) its last row's object's. */
export function eventResourceVersion(event: ParsedEvent): string | undefined {
  const own = event.object?.metadata?.resourceVersion;
  if (typeof own === 'string' && own !== '') return own;
  const rows = event.object?.rows;
  const row = Array.isArray(rows) ? rows[rows.length - 1] : undefined;
  const rv = row?.object?.metadata?.resourceVersion;
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
}

/** Options of {@link WatchTracker}. */
export interface WatchTrackerOptions {
  /** Pass BOOKMARK events on (the caller asked for them). */
  callerBookmarks: boolean;
  /** The watch started from an explicit resourceVersion (not "0") without initial events: every event is a sound resume point. */
  explicitStart: boolean;
  /** `sendInitialEvents=true`: sound only after the initial-events-end bookmark. */
  initialEvents: boolean;
}

export class WatchTracker {
  readonly #o: WatchTrackerOptions;
  readonly #splitter = new JsonEventSplitter(MAX_WATCH_EVENT_BYTES);
  #lastResourceVersion: string | undefined;
  #sound: boolean;
  #delivered = 0;
  #ended = false;
  /** The previous object was not passed on: the whitespace that ends its line is not either. */
  #droppedLast = false;
  /** Just resumed: an event with the very resourceVersion last seen is a repeat. */
  #resumed = false;

  constructor(o: WatchTrackerOptions) {
    this.#o = o;
    this.#sound = o.explicitStart && !o.initialEvents;
  }

  /** The last resourceVersion seen (events and bookmarks). */
  get resourceVersion(): string | undefined {
    return this.#lastResourceVersion;
  }

  /** Events passed on so far (bookmarks the caller did not ask for not counted). */
  get delivered(): number {
    return this.#delivered;
  }

  /**
   * Why the watch cannot be resumed now, or undefined when it can: an ERROR
   * event ended it, the stream was not JSON events, or nothing sound to
   * resume from was seen (and events were delivered).
   */
  notResumable(): string | undefined {
    if (this.#ended) return 'an ERROR event ended the watch';
    if (this.#splitter.broken) return 'the stream is not a sequence of JSON watch events';
    if (this.#delivered > 0 && (!this.#sound || this.#lastResourceVersion === undefined))
      return 'no resourceVersion to resume from yet (initial events not over)';
    return undefined;
  }

  /** The bytes of `chunk` to pass on: whole events, repeats and unasked-for bookmarks left out. */
  push(chunk: Buffer): Buffer[] {
    return this.#pass(this.#splitter.push(chunk));
  }

  /** At a normal end of the stream: anything held is passed on as it is. */
  flush(): Buffer[] {
    return this.#pass(this.#splitter.flush());
  }

  /** The stream was cut: an unfinished event is dropped (the resumed stream repeats it). */
  cut(): void {
    this.#splitter.discard();
    this.#droppedLast = false;
  }

  /** A resumed stream starts: repeats of the last event are dropped. */
  resumed(): void {
    this.#resumed = true;
  }

  #pass(pieces: Piece[]): Buffer[] {
    const out: Buffer[] = [];
    for (const piece of pieces) {
      if (piece.kind === 'space') {
        if (!this.#droppedLast) out.push(piece.bytes);
        continue;
      }
      if (piece.kind === 'other') {
        this.#droppedLast = false;
        out.push(piece.bytes);
        continue;
      }
      const keep = this.#event(piece.bytes);
      this.#droppedLast = !keep;
      if (keep) out.push(piece.bytes);
    }
    return out;
  }

  /** Records one whole event; true when it is passed on. */
  #event(bytes: Buffer): boolean {
    let event: ParsedEvent;
    try {
      event = JSON.parse(bytes.toString('utf8')) as ParsedEvent;
    } catch {
      this.#delivered++;
      return true;
    }
    const type = typeof event.type === 'string' ? event.type : '';
    const rv = eventResourceVersion(event);
    if (type === 'BOOKMARK') {
      if (rv !== undefined) {
        const endOfInitial = event.object?.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true';
        if (!this.#o.initialEvents || endOfInitial) this.#sound = true;
        this.#lastResourceVersion = rv;
      }
      if (this.#o.callerBookmarks) this.#delivered++;
      return this.#o.callerBookmarks;
    }
    if (type === 'ERROR') {
      this.#ended = true;
      this.#delivered++;
      return true;
    }
    if (this.#resumed && rv !== undefined && rv === this.#lastResourceVersion) return false;
    this.#resumed = false;
    if (!this.#o.initialEvents && (type === 'MODIFIED' || type === 'DELETED')) this.#sound = true;
    if (rv !== undefined) this.#lastResourceVersion = rv;
    this.#delivered++;
    return true;
  }
}
