import { Fifo } from './fifo.ts';
import type { OutFrame } from './frame.ts';
import type { Stream } from './stream.ts';

/** Streams of one scheduling group that have something to send, in turn order. */
interface Group {
  readonly key: string | undefined;
  readonly ready: Fifo<Stream>;
  /** Queued in the rotation (or re-queued while being served). */
  inRotation: boolean;
}

/**
 * Picks which stream sends the next data frame: round-robin across the
 * scheduling groups that have a ready stream, and round-robin across the
 * ready streams within a group, one frame each turn. Streams without a group
 * (`Stream.group` undefined) share one group, so when nobody sets a group the
 * order is plain round-robin over the ready streams.
 *
 * Everything is O(1) per frame (amortised): a ready stream is queued once
 * (`inReadyQueue`), a group is in the rotation at most once (`inRotation`).
 * A stream that closed while queued is skipped when its turn comes. A group
 * leaves the map as soon as it has no ready stream, so the map holds only
 * groups with data to send and group keys never accumulate.
 * @internal
 */
export class SendScheduler {
  readonly #groups = new Map<string | undefined, Group>();
  #rotation = new Fifo<Group>();

  /** Groups that currently have (or just had, while served) a ready stream. */
  get groupCount(): number {
    return this.#groups.size;
  }

  /** Queues `s` at the back of its group if it has something to send and is not queued yet. */
  add(s: Stream): void {
    if (s.inReadyQueue || !s.hasSendable()) return;
    s.inReadyQueue = true;
    const key = s.group;
    let g = this.#groups.get(key);
    if (g === undefined) {
      g = { key, ready: new Fifo<Stream>(), inRotation: false };
      this.#groups.set(key, g);
    }
    g.ready.push(s);
    if (!g.inRotation) {
      g.inRotation = true;
      this.#rotation.push(g);
    }
  }

  /** The next data frame (or FIN), or undefined when no stream can send. */
  next(maxFrameBytes: number): OutFrame | undefined {
    let frame: OutFrame | undefined;
    while (frame === undefined) {
      const g = this.#rotation.shift();
      if (g === undefined) break;
      g.inRotation = false;
      while (frame === undefined) {
        const s = g.ready.shift();
        if (s === undefined) break;
        s.inReadyQueue = false;
        // nextFrame() may run a write callback that queues more (here or in another group).
        frame = s.nextFrame(maxFrameBytes);
        this.add(s); // still sendable: back of its group, which goes to the back of the rotation
      }
      if (g.inRotation) continue;
      if (g.ready.length > 0) {
        g.inRotation = true;
        this.#rotation.push(g);
      } else if (this.#groups.get(g.key) === g) {
        this.#groups.delete(g.key);
      }
    }
    return frame;
  }

  /** Forgets every queued stream and group (session shutdown). */
  clear(): void {
    this.#groups.clear();
    this.#rotation.clear();
  }
}
