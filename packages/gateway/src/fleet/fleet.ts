// A gateway replica's part in the fleet: it claims the clusters whose agents
// it holds, gives them up when a newer claim wins elsewhere, finds the owner
// of any other cluster, and reaches it over a replica link.
import type { Logger } from 'pino';
import type { SessionOptions, Stream } from '@pipeops/tunnel-mux';
import { TunnelError, type StreamPreamble } from '@pipeops/tunnel-protocol';
import type { ClusterInfo } from '../agent-report.ts';
import { gatewayError } from '../errors.ts';
import type { ClusterOwner, FleetRegistry } from './registry.ts';
import { DEFAULT_OWNER_CACHE_MS, OwnerCache } from './owner-cache.ts';
import { RedisRegistry } from './redis-registry.ts';
import { ReplicaEndpoint, ReplicaLinks } from './replica-link.ts';

/** The fleet settings of {@link GatewayOptions.fleet}. */
export interface FleetOptions {
  /** `redis://…` or `rediss://…`, password in the URL if any. */
  redisUrl: string;
  /** CA for `rediss://`. */
  redisCa?: string | Buffer;
  /** `https://host:port` where the other replicas reach this one; or made from the port bound (for port 0). */
  advertiseUrl: string | ((port: number) => string);
  /** The secret every replica of the fleet shares (replica links are authenticated with it). */
  secret: string;
  /** CA the other replicas' certificates are checked against (default: the system's). */
  peerCa?: string | Buffer;
  /** Heartbeat period (ms). Default 1_000. */
  heartbeatMs?: number;
  /** A replica whose heartbeat is this old is dead and its claims void (ms). Default 3_000. */
  leaseMs?: number;
  /** Period of the check of this replica's claims (ms). Default 10_000. */
  verifyMs?: number;
  /** Prefix of every Redis key. Default `pipeops-tunnel:`. */
  keyPrefix?: string;
  /** How long the owner of another replica's cluster is used without asking Redis again (ms; a claim announced or a refusal drops it sooner). Default 1_000; 0 = asked per request. */
  ownerCacheMs?: number;
}

/** One agent session as the fleet sees it. */
export interface HeldSession {
  cluster: string;
  sessionId: string;
}

/** What the fleet needs from its gateway. */
export interface FleetDeps {
  logger: Logger;
  maxPayloadBytes: number;
  mux: Partial<SessionOptions> | undefined;
  /** Opens a stream to a cluster whose agent this replica holds; throws TunnelError 503 when it holds none. */
  openLocal(cluster: string, preamble: Omit<StreamPreamble, 'v'>): Stream;
  localClusters(): ClusterInfo[];
  /** The sessions this replica holds, one per cluster. */
  held(): HeldSession[];
  /** The id of the session this replica holds for `cluster`, if any (a lookup, not a scan: asked per claim announced). */
  sessionOf(cluster: string): string | undefined;
  /** A newer claim on another replica won `cluster`: stop using this replica's session for it. */
  evict(cluster: string, sessionId: string): void;
}

/** A cluster of `GET /v1/clusters` in a fleet: which replica holds it. */
export type FleetClusterInfo = ClusterInfo & { replica: { id: string; url: string } };

/** This replica's fleet membership: registry, replica links both ways. */
export class Fleet {
  readonly registry: FleetRegistry;
  readonly endpoint: ReplicaEndpoint;
  readonly #links: ReplicaLinks;
  readonly #deps: FleetDeps;
  readonly #log: Logger;
  readonly #verifyMs: number;
  readonly #advertise: FleetOptions['advertiseUrl'];
  /** The epoch of this replica's claim, by session id. */
  readonly #epochs = new Map<string, number>();
  /** The highest epoch another replica claimed, by cluster (a claim answered after a newer one was announced loses). */
  readonly #foreign = new Map<string, number>();
  /** Owners of other replicas' clusters, as recently found (see owner-cache.ts). */
  readonly #owners: OwnerCache;
  #verifier: NodeJS.Timeout | undefined;
  #verifying = false;

  constructor(o: FleetOptions, deps: FleetDeps, registry?: FleetRegistry) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: 'fleet' });
    this.#verifyMs = o.verifyMs ?? 10_000;
    this.#advertise = o.advertiseUrl;
    this.#owners = new OwnerCache(o.ownerCacheMs ?? DEFAULT_OWNER_CACHE_MS);
    this.registry =
      registry ??
      new RedisRegistry({
        url: o.redisUrl,
        logger: deps.logger,
        ...(o.redisCa === undefined ? {} : { ca: o.redisCa }),
        ...(o.heartbeatMs === undefined ? {} : { heartbeatMs: o.heartbeatMs }),
        ...(o.leaseMs === undefined ? {} : { leaseMs: o.leaseMs }),
        verifyMs: this.#verifyMs,
        ...(o.keyPrefix === undefined ? {} : { keyPrefix: o.keyPrefix }),
      });
    this.endpoint = new ReplicaEndpoint({
      secret: o.secret,
      logger: this.#log,
      maxPayloadBytes: deps.maxPayloadBytes,
      mux: deps.mux,
      openLocal: async (cluster, preamble) => deps.openLocal(cluster, preamble),
      localClusters: () => deps.localClusters(),
    });
    this.#links = new ReplicaLinks({ secret: o.secret, ca: o.peerCa, logger: this.#log, mux: deps.mux });
    this.registry.on('claim', (c: { cluster: string; epoch: number; replicaId: string }) => this.#onClaim(c.cluster, c.epoch, c.replicaId));
    // Back after an outage (or reachable for the first time): every tunnel held here is claimed (again).
    this.registry.on('restored', () => {
      for (const s of this.#deps.held()) void this.claim(s);
    });
  }

  get replicaId(): string {
    return this.registry.replicaId;
  }

  /** Joins the fleet, once this replica listens on `port`. */
  async start(port: number): Promise<void> {
    await this.registry.start(typeof this.#advertise === 'string' ? this.#advertise : this.#advertise(port));
    this.#verifier = setInterval(() => void this.#verify(), this.#verifyMs);
    this.#verifier.unref();
  }

  /** Claims `s.cluster` for this replica (its agent said hello here). Never rejects: an unreachable store is retried on `restored`. */
  async claim(s: HeldSession): Promise<void> {
    let epoch: number;
    try {
      epoch = await this.registry.claim(s.cluster, s.sessionId);
    } catch (err) {
      this.#log.warn(
        { event: 'fleet_claim_failed', cluster: s.cluster, err },
        'could not claim the cluster in the fleet registry; claimed again when it is back',
      );
      return;
    }
    if (this.#deps.sessionOf(s.cluster) !== s.sessionId) {
      // The session ended while its claim was in flight.
      void this.registry.release(s.cluster, s.sessionId);
      return;
    }
    this.#epochs.set(s.sessionId, epoch);
    if ((this.#foreign.get(s.cluster) ?? 0) > epoch) this.#lost(s.cluster, s.sessionId, 'a newer claim on another replica was announced first');
  }

  /** The session of `s.cluster` ended here. */
  released(s: HeldSession, stillOwned: boolean): void {
    this.#epochs.delete(s.sessionId);
    if (stillOwned) void this.registry.release(s.cluster, s.sessionId);
  }

  #onClaim(cluster: string, epoch: number, replicaId: string): void {
    this.#owners.forget(cluster);
    if (replicaId === this.replicaId) return;
    if ((this.#foreign.get(cluster) ?? 0) < epoch) this.#foreign.set(cluster, epoch);
    const sessionId = this.#deps.sessionOf(cluster);
    if (sessionId === undefined) return;
    const mine = this.#epochs.get(sessionId);
    if (mine !== undefined && mine < epoch) this.#lost(cluster, sessionId, `replica ${replicaId} claimed it (epoch ${epoch} > ${mine})`);
  }

  #lost(cluster: string, sessionId: string, why: string): void {
    this.#epochs.delete(sessionId);
    this.#log.info({ event: 'fleet_cluster_lost', cluster, sessionId, why }, 'another replica holds this cluster now; the session here is ended');
    this.#deps.evict(cluster, sessionId);
  }

  async #verify(): Promise<void> {
    if (this.#verifying || this.registry.problem() !== undefined) return;
    this.#verifying = true;
    try {
      const held = new Map(
        this.#deps
          .held()
          .filter((h) => this.#epochs.has(h.sessionId))
          .map((h) => [h.cluster, h.sessionId]),
      );
      for (const cluster of await this.registry.verify(held)) this.#lost(cluster, held.get(cluster)!, "its claim is another session's now");
    } catch (err) {
      this.#log.debug({ event: 'fleet_verify_failed', err }, 'could not verify the claims');
    } finally {
      this.#verifying = false;
    }
  }

  /**
   * Opens a stream to `cluster` through the replica that holds it. Rejects
   * with TunnelError 503: `PT_ERR_CLUSTER_NOT_CONNECTED` (no live owner),
   * `PT_ERR_FLEET_UNAVAILABLE` (Redis cannot be asked),
   * `PT_ERR_REPLICA_UNREACHABLE`; or the owner's own refusal.
   *
   * An owner that answers "not connected", or cannot be reached, has just
   * lost the cluster or is exiting (its agent moved while this request was
   * on its way: a rolling update): the cluster is looked for once more,
   * here first, then in Redis. Nothing reached an agent before that answer,
   * so asking again is safe.
   */
  async openRemote(cluster: string, preamble: Omit<StreamPreamble, 'v'>): Promise<Stream> {
    let refused: { url: string; err: Error } | undefined;
    for (;;) {
      if (refused !== undefined) {
        try {
          return this.#deps.openLocal(cluster, preamble);
        } catch {
          /* not here either: ask Redis again */
        }
      }
      const owner = (refused === undefined ? this.#owners.get(cluster) : undefined) ?? (await this.#owner(cluster));
      if (owner === undefined || owner.replicaId === this.replicaId)
        throw refused?.err ?? new TunnelError('PT_ERR_CLUSTER_NOT_CONNECTED', `cluster ${cluster} is not connected`);
      if (refused !== undefined && owner.url === refused.url) throw refused.err;
      try {
        return await this.#links.open(owner.url, cluster, preamble);
      } catch (err) {
        this.#owners.forget(cluster);
        const code = (err as TunnelError).code;
        if (refused !== undefined || (code !== 'PT_ERR_CLUSTER_NOT_CONNECTED' && code !== 'PT_ERR_REPLICA_UNREACHABLE')) throw err;
        refused = { url: owner.url, err: err as Error };
      }
    }
  }

  /** The session holding `cluster` fleet-wide, or undefined (none, or the registry cannot be asked). Never rejects. */
  async holder(cluster: string): Promise<string | undefined> {
    try {
      return (await this.registry.owner(cluster))?.sessionId;
    } catch {
      return undefined;
    }
  }

  /** The owner as the registry says now (remembered for the next requests). */
  async #owner(cluster: string): Promise<ClusterOwner | undefined> {
    try {
      const owner = await this.registry.owner(cluster);
      if (owner !== undefined && owner.replicaId !== this.replicaId) this.#owners.set(owner);
      return owner;
    } catch (err) {
      throw gatewayError(
        'PT_ERR_FLEET_UNAVAILABLE',
        `cluster ${cluster} is not connected to this replica and the fleet registry cannot be asked: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** Every cluster of the fleet, with the replica holding it: this replica's own, then each live replica's (a replica that cannot be reached is left out and logged). */
  async clusters(local: ClusterInfo[]): Promise<FleetClusterInfo[]> {
    const self = { id: this.replicaId, url: this.registry.url };
    const all: FleetClusterInfo[] = local.map((c) => ({ ...c, replica: self }));
    let peers: Array<{ replicaId: string; url: string }> = [];
    try {
      peers = (await this.registry.replicas()).filter((r) => r.replicaId !== this.replicaId);
    } catch (err) {
      this.#log.warn({ event: 'fleet_list_failed', err }, 'could not list the replicas; /v1/clusters shows this replica only');
    }
    const remote = await Promise.all(
      peers.map(async (p) => {
        try {
          return (await this.#links.clusters(p.url)).map((c) => ({ ...c, replica: { id: p.replicaId, url: p.url } }));
        } catch (err) {
          this.#log.warn({ event: 'fleet_list_failed', replica: p.url, err }, "could not list a replica's clusters");
          return [];
        }
      }),
    );
    return all.concat(...remote).sort((a, b) => a.cluster.localeCompare(b.cluster));
  }

  async close(): Promise<void> {
    if (this.#verifier !== undefined) clearInterval(this.#verifier);
    for (const s of this.#deps.held()) this.released(s, true);
    // The heartbeat goes first: other replicas stop sending requests here before the links are refused.
    await this.registry.close();
    await this.#links.close();
    await this.endpoint.close();
  }
}
