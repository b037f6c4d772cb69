// Which replica holds a cluster, remembered for a moment: a replica routing
// a runner's requests to another replica's tunnel asks Redis once per
// cluster and period, not once per request. A stale entry is safe: the
// replica named refuses a cluster it no longer holds (or cannot be reached),
// and the caller then asks Redis again (Fleet.openRemote); every claim
// announced drops the cluster's entry at once.
import type { ClusterOwner } from './registry.ts';

/** Default of {@link FleetOptions.ownerCacheMs}. */
export const DEFAULT_OWNER_CACHE_MS = 1_000;

/** Entries kept before the expired ones are swept (on the next insert). */
const SWEEP_ABOVE = 1_024;

export class OwnerCache {
  readonly #ttlMs: number;
  readonly #entries = new Map<string, { owner: ClusterOwner; until: number }>();
  #sweepAbove = SWEEP_ABOVE;

  /** `ttlMs`: how long an owner is used without asking again; 0 = never remembered. */
  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  /** The owner of `cluster` as last found, while it is fresh. */
  get(cluster: string): ClusterOwner | undefined {
    const e = this.#entries.get(cluster);
    if (e === undefined) return undefined;
    if (performance.now() < e.until) return e.owner;
    this.#entries.delete(cluster);
    return undefined;
  }

  /** Remembers `owner` (found in the registry just now). */
  set(owner: ClusterOwner): void {
    if (this.#ttlMs <= 0) return;
    const now = performance.now();
    this.#entries.set(owner.cluster, { owner, until: now + this.#ttlMs });
    if (this.#entries.size > this.#sweepAbove) {
      for (const [cluster, e] of this.#entries) if (e.until <= now) this.#entries.delete(cluster);
      this.#sweepAbove = Math.max(SWEEP_ABOVE, 2 * this.#entries.size);
    }
  }

  /** Drops what is known of `cluster` (a claim was announced, or the owner refused it). */
  forget(cluster: string): void {
    this.#entries.delete(cluster);
  }

  /** Entries held (fresh or not yet swept). */
  get size(): number {
    return this.#entries.size;
  }
}
