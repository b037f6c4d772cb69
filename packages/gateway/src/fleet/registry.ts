// The fleet's registry: which replica holds each cluster's tunnel. One
// interface, one implementation on Redis (redis-registry.ts); a gateway
// without `redis.url` has no registry and runs alone, as before.
import type { EventEmitter } from 'node:events';

/** The replica holding a cluster's tunnel, as the registry says, checked against that replica's heartbeat. */
export interface ClusterOwner {
  cluster: string;
  /** Fencing number of the claim: every claim of a cluster gets a higher one; the highest wins fleet-wide. */
  epoch: number;
  replicaId: string;
  /** The agent session (the gateway's `sessionId`) the claim was made for. */
  sessionId: string;
  /** Where other replicas reach the owner (its `replica.advertise_url`). */
  url: string;
}

/** A claim another replica (or this one, for a newer session) made: announced to every replica. */
export interface Claim {
  cluster: string;
  epoch: number;
  replicaId: string;
}

/** A replica that is alive: its heartbeat has not expired. */
export interface LiveReplica {
  replicaId: string;
  url: string;
}

/**
 * The registry a replica keeps its tunnels in. Events: `claim` (a {@link Claim},
 * any replica's, including this one's), `restored` (the store is back after
 * an outage: the replica claims its tunnels again).
 */
export interface FleetRegistry extends EventEmitter {
  /** This replica's id (random per process: a restarted replica never inherits its predecessor's claims). */
  readonly replicaId: string;
  /** This replica's `advertise_url` (known from {@link start}). */
  readonly url: string;
  /** Starts the heartbeat under `url` (this replica's advertise_url) and the claim subscription; resolves once tried (an unreachable store is retried, not fatal). */
  start(url: string): Promise<void>;
  /** Makes this replica the owner of `cluster` for `sessionId`; resolves with the claim's epoch. Rejects when the store is unreachable. */
  claim(cluster: string, sessionId: string): Promise<number>;
  /** Removes the claim if it is still this replica's for `sessionId`. Never rejects. */
  release(cluster: string, sessionId: string): Promise<void>;
  /** The live owner of `cluster`, or undefined (no claim, or its replica's heartbeat expired). Rejects when the store is unreachable. */
  owner(cluster: string): Promise<ClusterOwner | undefined>;
  /** Every replica whose heartbeat is live, this one included. Rejects when the store is unreachable. */
  replicas(): Promise<LiveReplica[]>;
  /**
   * Checks this replica's claims (`sessionId` by cluster): refreshes the ones
   * it still holds and returns the clusters whose claim is now another
   * session's (a newer claim won).
   */
  verify(held: Map<string, string>): Promise<string[]>;
  /** Why the store cannot be used right now, or undefined when it can. */
  problem(): string | undefined;
  /** Stops the heartbeat (the replica's key is deleted: its claims stop counting at once) and disconnects. */
  close(): Promise<void>;
}
