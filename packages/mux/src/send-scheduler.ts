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
 * with no ready stream stays in the map, to be used again by its next burst
 * (creating and deleting it per burst was a third of the scheduler's
 * allocations); idle groups are dropped once the map holds more than
 * {@link IDLE_GROUPS_KEPT} and twice as many as after the last drop, so
 * group keys never accumulate and the sweep stays O(1) amortised.
 * @internal
 */
export class SendScheduler {
  readonly #groups = new Map<string | undefined, Group>();
  #rotation = new Fifo<Group>();
  /** Map size after the last sweep of idle groups. */
  #sizeAfterSweep = 0;

  /** Groups that currently have (or just had, while served) a ready stream. */
  get groupCount(): number {
    let n = 0;
    for (const g of this.#groups.values()) if (!idle(g)) n++;
    return n;
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
      } else if (this.#groups.size > IDLE_GROUPS_KEPT && this.#groups.size > 2 * this.#sizeAfterSweep) {
        this.#sweep();
      }
    }
    return frame;
  }

  /** Forgets every queued stream and group (session shutdown). */
  clear(): void {
    this.#groups.clear();
    this.#rotation.clear();
    this.#sizeAfterSweep = 0;
  }

  /** Drops the groups with nothing to send. */
  #sweep(): void {
    for (const [key, g] of this.#groups) if (idle(g)) this.#groups.delete(key);
    this.#sizeAfterSweep = this.#groups.size;
  }
}

/** Idle groups kept for reuse before a sweep is considered. */
const IDLE_GROUPS_KEPT = 64;

function idle(g: Group): boolean {
  return g.ready.length === 0 && !g.inRotation;
}
