// The fleet registry on Redis (ioredis). Keys, under `keyPrefix`
// (default `pipeops-tunnel:`):
//
//   replica:<id>     the replica's advertise_url; PX lease (3 s), written every heartbeat (1 s)
//   replicas         sorted set: replica id → last heartbeat (ms), for listing; pruned after 10 leases
//   cluster:<name>   "<epoch>|<replica id>|<session id>": who holds the tunnel; PX entry TTL
//                    (4 verify periods), refreshed by the owner's verify pass
//   epoch:<name>     the cluster's claim counter (INCR), PX 7 days
//   channel claims   "<epoch>|<replica id>|<cluster>" on every claim
//
// A claim is honoured only while its replica's heartbeat key lives, so a
// replica that dies stops owning its clusters within one lease, without a
// write per cluster. Steady-state cost: one script call per replica per
// heartbeat, and per cluster one GET + PEXPIRE per verify period (10 s),
// i.e. 60 calls per replica and 12 per cluster per minute; lookups only for
// requests that land on a replica without the tunnel.
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import type { ClusterOwner, FleetRegistry, LiveReplica } from './registry.ts';

/**
 * ioredis, loaded when a registry is made: ~20 MB of RSS (its code and its
 * dependencies') that a gateway without `fleet.redis` does not pay.
 */
function ioredis(): typeof import('ioredis') {
  return createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
}

/** Options of {@link RedisRegistry}. */
export interface RedisRegistryOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). */
  url: string;
  /** CA for `rediss://` (default: the system's). */
  ca?: string | Buffer;
  logger: Logger;
  /** Heartbeat period (ms). Default 1_000. */
  heartbeatMs?: number;
  /** A replica is dead once its heartbeat is this old (ms). Default 3_000. */
  leaseMs?: number;
  /** Period of the owner's check of its claims (ms). Default 10_000. */
  verifyMs?: number;
  /** Default `pipeops-tunnel:`. */
  keyPrefix?: string;
  /** Time a command may take before it fails (ms). Default 1_000. */
  commandTimeoutMs?: number;
}

const SEP = '|';

const LUA_HEARTBEAT = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return 1`;

const LUA_CLAIM = `
local e = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 604800000)
redis.call('SET', KEYS[1], e .. '|' .. ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], e .. '|' .. ARGV[1] .. '|' .. ARGV[5])
return e`;

const LUA_RELEASE = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, -string.len(ARGV[1])) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0`;

const LUA_OWNER = `
local v = redis.call('GET', KEYS[1])
if not v then return nil end
local rid = string.match(v, '^%d+|([^|]+)|')
if not rid then return nil end
local url = redis.call('GET', ARGV[1] .. rid)
if not url then return nil end
return {v, url}`;

// Returns, per key (1-based), nothing when still ours (refreshed), i when another claim holds it, -i when gone.
const LUA_VERIFY = `
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  local want = '|' .. ARGV[1] .. '|' .. ARGV[i + 2]
  if v and string.sub(v, -string.len(want)) == want then redis.call('PEXPIRE', k, ARGV[2])
  elseif v then table.insert(out, i)
  else table.insert(out, -i) end
end
return out`;

interface Scripts {
  ptHeartbeat(replicaKey: string, replicasKey: string, url: string, leaseMs: number, now: number, id: string, pruneBefore: number): Promise<number>;
  ptClaim(clusterKey: string, epochKey: string, replicaId: string, sessionId: string, ttlMs: number, channel: string, cluster: string): Promise<number>;
  ptRelease(clusterKey: string, suffix: string): Promise<number>;
  ptOwner(clusterKey: string, replicaPrefix: string): Promise<[string, string] | null>;
  ptVerify(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
}

const VERIFY_BATCH = 500;

/** {@link FleetRegistry} on one Redis server (7.0; not Redis Cluster: the scripts read keys they do not declare). */
export class RedisRegistry extends EventEmitter implements FleetRegistry {
  readonly replicaId = randomUUID();
  #url = '';
  readonly #o: Required<Omit<RedisRegistryOptions, 'ca'>>;
  readonly #redis: Redis & Scripts;
  readonly #sub: Redis;
  readonly #log: Logger;
  #heartbeat: NodeJS.Timeout | undefined;
  #problem: string | undefined = 'not connected to Redis yet';
  /** True until the first heartbeat after start or after an outage gets through. */
  #lost = true;
  #closed = false;

  constructor(o: RedisRegistryOptions) {
    super();
    this.#o = {
      url: o.url,
      logger: o.logger,
      heartbeatMs: o.heartbeatMs ?? 1_000,
      leaseMs: o.leaseMs ?? 3_000,
      verifyMs: o.verifyMs ?? 10_000,
      keyPrefix: o.keyPrefix ?? 'pipeops-tunnel:',
      commandTimeoutMs: o.commandTimeoutMs ?? 1_000,
    };
    this.#log = o.logger.child({ component: 'fleet' });
    const options: RedisOptions = {
      lazyConnect: true,
      // A request must not wait for Redis to come back: it gets a 503 at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.#o.commandTimeoutMs,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(100 * times, 1_000),
      ...(o.url.startsWith('rediss:') && o.ca !== undefined ? { tls: { ca: o.ca } } : {}),
    };
    // ioredis' option types do not accept exactOptionalPropertyTypes' explicit undefined; the object has none.
    const { Redis: RedisClient } = ioredis();
    const redis = new RedisClient(o.url, options as never);
    redis.defineCommand('ptHeartbeat', { numberOfKeys: 2, lua: LUA_HEARTBEAT });
    redis.defineCommand('ptClaim', { numberOfKeys: 2, lua: LUA_CLAIM });
    redis.defineCommand('ptRelease', { numberOfKeys: 1, lua: LUA_RELEASE });
    redis.defineCommand('ptOwner', { numberOfKeys: 1, lua: LUA_OWNER });
    redis.defineCommand('ptVerify', { lua: LUA_VERIFY });
    this.#redis = redis as Redis & Scripts;
    this.#sub = new RedisClient(o.url, { ...options, enableOfflineQueue: true } as never);
    for (const [conn, role] of [
      [redis, 'commands'],
      [this.#sub, 'claims'],
    ] as const) {
      conn.on('error', (err: Error) => this.#onError(err, role));
    }
    redis.on('close', () => {
      if (!this.#closed) this.#lostStore('connection to Redis closed');
    });
    // Reconnected: beat at once, so the replica is whole again (and re-claims its tunnels) without waiting a period.
    redis.on('ready', () => {
      if (this.#heartbeat !== undefined) void this.#beat();
    });
    this.#sub.on('message', (_channel: string, message: string) => this.#onClaimMessage(message));
  }

  #key(kind: 'replica' | 'cluster' | 'epoch', name: string): string {
    return `${this.#o.keyPrefix}${kind}:${name}`;
  }
  get #channel(): string {
    return `${this.#o.keyPrefix}claims`;
  }
  get #entryTtlMs(): number {
    return this.#o.verifyMs * 4;
  }

  get url(): string {
    return this.#url;
  }

  async start(url: string): Promise<void> {
    this.#url = url;
    await Promise.allSettled([this.#redis.connect(), this.#sub.connect()]);
    await this.#sub.subscribe(this.#channel).catch((err: Error) => this.#onError(err, 'claims'));
    await this.#beat();
    this.#heartbeat = setInterval(() => void this.#beat(), this.#o.heartbeatMs);
    this.#heartbeat.unref();
  }

  async #beat(): Promise<void> {
    const now = Date.now();
    try {
      await this.#redis.ptHeartbeat(
        this.#key('replica', this.replicaId),
        `${this.#o.keyPrefix}replicas`,
        this.url,
        this.#o.leaseMs,
        now,
        this.replicaId,
        now - 10 * this.#o.leaseMs,
      );
    } catch (err) {
      this.#lostStore(`Redis unavailable: ${(err as Error).message}`);
      return;
    }
    this.#problem = undefined;
    if (this.#lost) {
      this.#lost = false;
      this.#log.info({ event: 'fleet_registry_ready', replicaId: this.replicaId, url: this.url }, 'fleet registry ready');
      this.emit('restored');
    }
  }

  #lostStore(problem: string): void {
    if (!this.#lost) this.#log.warn({ event: 'fleet_registry_lost', problem }, 'fleet registry unavailable; serving the tunnels held here only');
    this.#lost = true;
    this.#problem = problem;
  }

  #onError(err: Error, role: string): void {
    this.#log.debug({ event: 'fleet_redis_error', role, err }, 'Redis connection error');
  }

  #onClaimMessage(message: string): void {
    const [epoch, replicaId, ...rest] = message.split(SEP);
    const cluster = rest.join(SEP);
    const n = Number(epoch);
    if (!Number.isSafeInteger(n) || replicaId === undefined || replicaId === '' || cluster === '') return;
    this.emit('claim', { cluster, epoch: n, replicaId });
  }

  async claim(cluster: string, sessionId: string): Promise<number> {
    return Number(
      await this.#redis.ptClaim(
        this.#key('cluster', cluster),
        this.#key('epoch', cluster),
        this.replicaId,
        sessionId,
        this.#entryTtlMs,
        this.#channel,
        cluster,
      ),
    );
  }

  async release(cluster: string, sessionId: string): Promise<void> {
    try {
      await this.#redis.ptRelease(this.#key('cluster', cluster), `${SEP}${this.replicaId}${SEP}${sessionId}`);
    } catch (err) {
      // The claim stops counting when this replica's heartbeat does, or is overwritten by the next claim.
      this.#log.debug({ event: 'fleet_release_failed', cluster, err }, 'could not release a claim');
    }
  }

  async owner(cluster: string): Promise<ClusterOwner | undefined> {
    const got = await this.#redis.ptOwner(this.#key('cluster', cluster), this.#key('replica', ''));
    if (got === null) return undefined;
    const [entry, url] = got;
    const [epoch, replicaId, sessionId] = entry.split(SEP);
    return { cluster, epoch: Number(epoch), replicaId: replicaId ?? '', sessionId: sessionId ?? '', url };
  }

  async replicas(): Promise<LiveReplica[]> {
    const ids = await this.#redis.zrangebyscore(`${this.#o.keyPrefix}replicas`, Date.now() - this.#o.leaseMs, '+inf');
    if (ids.length === 0) return [];
    const urls = await this.#redis.mget(ids.map((id) => this.#key('replica', id)));
    return ids.flatMap((replicaId, i) => (urls[i] ? [{ replicaId, url: urls[i] as string }] : []));
  }

  async verify(held: Map<string, string>): Promise<string[]> {
    const lost: string[] = [];
    const entries = [...held];
    for (let at = 0; at < entries.length; at += VERIFY_BATCH) {
      const batch = entries.slice(at, at + VERIFY_BATCH);
      const out = await this.#redis.ptVerify(
        batch.length,
        ...batch.map(([c]) => this.#key('cluster', c)),
        this.replicaId,
        this.#entryTtlMs,
        ...batch.map(([, s]) => s),
      );
      for (const i of out) {
        const [cluster, sessionId] = batch[Math.abs(i) - 1]!;
        if (i > 0) lost.push(cluster);
        // Gone (Redis restarted empty, or the entry expired): claimed again.
        else await this.claim(cluster, sessionId);
      }
    }
    return lost;
  }

  problem(): string | undefined {
    return this.#problem;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    // Deleting the heartbeat makes this replica's claims stop counting now rather than in one lease.
    await this.#redis.del(this.#key('replica', this.replicaId)).catch(() => {});
    this.#sub.disconnect();
    this.#redis.disconnect();
  }
}
