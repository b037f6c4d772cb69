// The fleet at scale: three `pipeops-tunnel gateway` processes on one real
// redis-server behind HAProxy (`balance leastconn`, as a balancer in front of
// long-lived tunnels would be set), and N agents of the real agent library in
// one helper process (../fleet-agents.ts, a stand-in for N agent pods) dialing
// the load balancer, one cluster each. What the scenario reads from it:
// each agent's connects and disconnects (stamped by the agents' process),
// each replica's RSS, CPU and `pipeops_tunnel_sessions`, and Redis's own
// command counters.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { startReplicas, type ReplicaSet } from '@pipeops/tunnel-e2e/harness/fleet';
import { rssBytes } from './proc-stats.ts';
import { startReadyChild, type ReadyChild } from './ready-child.ts';

const AGENTS_PATH = fileURLToPath(new URL('../fleet-agents.ts', import.meta.url));

/** What each agent of the helper process last reported. */
export interface AgentTrack {
  connected: boolean;
  /** Epoch ms of its last connect and disconnect (0 = never). */
  connectedAt: number;
  disconnectedAt: number;
}

export interface FleetRig {
  replicas: ReplicaSet;
  agentCount: number;
  agents: AgentTrack[];
  /** Resolves once `test` holds for the agents (checked on every line they print), or rejects after `timeoutMs`. */
  until(what: string, test: (agents: AgentTrack[]) => boolean, timeoutMs: number): Promise<void>;
  /** RSS of replica `i` once started and ready, before agents reached it. */
  baselineRss(i: number): number;
  pid(i: number): number;
  rss(i: number): number;
  /** `pipeops_tunnel_sessions` of replica `i`, from its /metrics. */
  sessions(i: number): Promise<number>;
  /** Kill replica `i` (SIGKILL), wait until it is gone; returns the epoch ms of the kill. */
  kill(i: number): Promise<number>;
  /** Redis's command counters (INFO commandstats): calls by command. */
  redisCalls(): Map<string, number>;
  /** Redis's `used_memory` now, and once the replicas were up but before any agent, bytes. */
  redisMemory(): number;
  baselineRedisMemory: number;
  close(): Promise<void>;
}

/** Starts the fleet and `agentCount` agents; resolves once every agent is connected. */
export async function startFleetRig(o: { replicas: number; agentCount: number }): Promise<FleetRig> {
  const dir = mkdtempSync(join(tmpdir(), 'pt-bench-fleet-'));
  const clusters = Array.from({ length: o.agentCount }, (_, i) => ({
    cluster: `fleet-${String(i).padStart(4, '0')}`,
    token: randomBytes(24).toString('base64url'),
  }));
  let replicas: ReplicaSet | undefined;
  let child: ReadyChild | undefined;
  try {
    replicas = await startReplicas({ dir, logDir: dir, replicas: o.replicas, agents: clusters, runners: [], balance: 'leastconn' });
    const set = replicas;
    const baselines = set.replicaUrls.map((_, i) => rssBytes(set.replica(i).child.pid!));
    const baselineRedisMemory = redisUsedMemory(set.redis.port);
    const dispatcher = new Agent({ connect: { ca: set.caCert } });
    const agents: AgentTrack[] = clusters.map(() => ({ connected: false, connectedAt: 0, disconnectedAt: 0 }));
    const waiters = new Set<() => void>();
    const config = join(dir, 'fleet-agents.json');
    writeFileSync(config, JSON.stringify({ url: set.lbUrl, caFile: set.caFile, agents: clusters }), { mode: 0o600 });
    child = await startReadyChild('fleet agents', [AGENTS_PATH, '--config', config], (line) => {
      const [kind, index, at] = line.split(' ');
      const a = agents[Number(index)];
      if (a === undefined) return;
      if (kind === 'C') {
        a.connected = true;
        a.connectedAt = Number(at);
      }
      if (kind === 'D') {
        a.connected = false;
        a.disconnectedAt = Number(at);
      }
      for (const wake of waiters) wake();
    });
    const agentsChild = child;
    return {
      replicas: set,
      agentCount: o.agentCount,
      agents,
      until(what, test, timeoutMs) {
        return new Promise((resolve, reject) => {
          const done = (err?: Error): void => {
            waiters.delete(check);
            clearTimeout(timer);
            if (err) reject(err);
            else resolve();
          };
          const check = (): void => {
            if (test(agents)) done();
          };
          const timer = setTimeout(
            () => done(new Error(`fleet: not ${what} within ${timeoutMs} ms (${agents.filter((a) => a.connected).length}/${agents.length} agents connected)`)),
            timeoutMs,
          );
          waiters.add(check);
          check();
        });
      },
      baselineRss: (i) => baselines[i]!,
      pid: (i) => set.replica(i).child.pid!,
      rss: (i) => rssBytes(set.replica(i).child.pid!),
      async sessions(i) {
        const res = await request(`${set.replicaUrls[i]}/metrics`, { dispatcher });
        const text = await res.body.text();
        const m = /^pipeops_tunnel_sessions (\d+)$/m.exec(text);
        if (res.statusCode !== 200 || m === null) throw new Error(`replica ${i} /metrics: ${res.statusCode}, no pipeops_tunnel_sessions`);
        return Number(m[1]);
      },
      async kill(i) {
        const at = Date.now();
        await set.kill(i);
        return at;
      },
      redisCalls: () => redisCommandCalls(set.redis.port),
      redisMemory: () => redisUsedMemory(set.redis.port),
      baselineRedisMemory,
      async close() {
        await agentsChild.close();
        await set.close();
        await dispatcher.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await child?.close();
    await replicas?.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** `INFO <section>` of the redis-server on `port` (redis-cli, Debian's redis-tools). */
function redisInfo(port: number, section: string): string {
  const r = spawnSync('redis-cli', ['-p', String(port), 'INFO', section], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-cli INFO ${section}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/** Calls by command name (INFO commandstats). */
function redisCommandCalls(port: number): Map<string, number> {
  const calls = new Map<string, number>();
  for (const m of redisInfo(port, 'commandstats').matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  return calls;
}

/** `used_memory` (INFO memory), bytes. */
function redisUsedMemory(port: number): number {
  const m = /^used_memory:(\d+)/m.exec(redisInfo(port, 'memory'));
  if (m === null) throw new Error('redis-cli INFO memory: no used_memory');
  return Number(m[1]);
}
