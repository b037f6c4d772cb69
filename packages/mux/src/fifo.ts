/**
 * A first-in first-out queue with O(1) `push` and amortised O(1) `shift`.
 *
 * `Array.prototype.shift` moves every remaining element, so a queue of n
 * items drained one by one costs O(n²): with a peer's ping flood queued
 * behind a slow transport that was seconds of a blocked event loop. Here a
 * head index walks the array; taken slots are cleared at once (so their
 * items can be collected) and the dead prefix is cut off when it is both
 * large and at least half of the array, so each item is copied at most a
 * constant number of times.
 * @internal
 */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** Items queued. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** Removes and returns the oldest item, or undefined when empty. */
  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items.length = 0; // emptied in place: a queue that drains every turn allocates nothing
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/** Dead slots tolerated before compaction is considered (small queues never copy). */
const COMPACT_AFTER = 1024;
