import { cpuSecondsSince, cpuSnapshot } from '../lib/proc-stats.ts';
import { startFleetRig, type FleetRig } from '../lib/fleet-rig.ts';
import type { BenchOptions, Figures, Rig, Scenario } from './types.ts';

const AGENTS = 1_000;
const REPLICAS = 3;
/** The agents' stability period (reconnect.stable_after, 10 s by default) and a margin: only a stable session's loss gets the short jittered first re-dial. */
const STABLE_MS = 10_500;
const KiB = 1024;

/**
 * 1,000 agents (the real agent library, many per process: ../fleet-agents.ts)
 * over three gateway replicas on Redis behind HAProxy (leastconn). Each round,
 * at steady state: the replicas' RSS per tunnel and idle CPU, and Redis's
 * commands per second over a window of whole verify periods; then the
 * replica holding the most tunnels is SIGKILLed, and the figures are how long
 * until every agent it held is connected again through the load balancer,
 * and how evenly they landed on the survivors. Each round starts a fleet of
 * its own: a killed replica started again stays empty (agents do not move
 * back on their own), and a storm from that uneven start would measure
 * HAProxy's leastconn, not the fleet.
 */
export const fleetScale: Scenario = {
  name: 'fleet-1000-agents',
  metrics: [
    {
      name: 'fleet-rss-per-tunnel',
      unit: 'KiB',
      description: 'gateway RSS added per idle agent tunnel: (Σ replica RSS with the agents − Σ before them) / 1,000',
      target: null,
    },
    {
      name: 'fleet-idle-cpu',
      unit: '% core',
      description: 'CPU of the three replicas together while 1,000 tunnels idle (keepalives, status reports, Redis heartbeats and verify passes)',
      target: null,
    },
    {
      name: 'fleet-redis-commands',
      unit: 'cmd/s',
      description: 'Redis commands per second at steady state, 1,000 clusters on 3 replicas (INFO commandstats, script calls and the commands they run)',
      target: null,
    },
    {
      name: 'fleet-redis-memory-per-cluster',
      unit: 'B',
      description: 'Redis used_memory added per connected cluster: (with the 1,000 agents − the replicas alone) / 1,000',
      target: null,
    },
    {
      name: 'fleet-redis-per-cluster',
      unit: 'cmd/min',
      description: "the same per cluster per minute (the replicas' heartbeats included)",
      target: { kind: 'at_most', value: 15 },
    },
    {
      name: 'storm-all-back',
      unit: 's',
      description:
        'the replica with the most tunnels SIGKILLed → the last of its agents connected again through the load balancer (default reconnect settings)',
      target: { kind: 'at_most', value: 30 },
    },
    { name: 'storm-median-back', unit: 's', description: 'the same, median agent', target: null },
    {
      name: 'storm-share-excess',
      unit: '%',
      description: 'after the storm, the fullest surviving replica over an even share of the 1,000 tunnels',
      target: { kind: 'at_most', value: 20 },
    },
  ],
  rounds: (o) => (o.quick ? 1 : 3),
  async setup(o: BenchOptions): Promise<Rig> {
    const windowMs = o.quick ? 10_000 : 30_000;
    return {
      async tunnel() {
        const rig = await startFleetRig({ replicas: REPLICAS, agentCount: AGENTS });
        try {
          return await round(rig, windowMs);
        } finally {
          await rig.close();
        }
      },
      direct: null,
      peer: null,
      close: async () => {},
    };
  },
};

const allConnected = (agents: FleetRig['agents']): boolean => agents.every((a) => a.connected);

async function sessionsByReplica(rig: FleetRig, replicas: number[]): Promise<number[]> {
  return Promise.all(replicas.map((i) => rig.sessions(i)));
}

async function round(rig: FleetRig, windowMs: number): Promise<Figures> {
  const all = Array.from({ length: REPLICAS }, (_, i) => i);
  await rig.until('all connected', allConnected, 120_000);
  await untilSessions(rig, all, AGENTS);

  // Steady state: a window of whole verify periods (10 s each).
  const cpu0 = all.map((i) => cpuSnapshot(rig.pid(i)));
  const calls0 = rig.redisCalls();
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, windowMs));
  const calls1 = rig.redisCalls();
  const seconds = (Date.now() - t0) / 1000;
  const cpu = cpu0.reduce((sum, c) => sum + cpuSecondsSince(c), 0);
  let commands = 0;
  for (const [name, n] of calls1) if (name !== 'info') commands += n - (calls0.get(name) ?? 0);
  const rss = all.reduce((sum, i) => sum + rig.rss(i) - rig.baselineRss(i), 0);
  const redisBytes = rig.redisMemory() - rig.baselineRedisMemory;

  // Only a session up for the stability period gets the agents' short jittered first re-dial.
  const lastConnect = Math.max(...rig.agents.map((a) => a.connectedAt));
  const wait = lastConnect + STABLE_MS - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));

  const before = await sessionsByReplica(rig, all);
  const victim = before.indexOf(Math.max(...before));
  const survivors = all.filter((i) => i !== victim);
  const killedAt = await rig.kill(victim);
  const lost = (a: FleetRig['agents'][number]): boolean => a.disconnectedAt >= killedAt;
  await rig.until('all back after the kill', (agents) => allConnected(agents) && agents.filter(lost).length >= before[victim]!, 120_000);
  const back = rig.agents
    .filter(lost)
    .map((a) => a.connectedAt - killedAt)
    .sort((x, y) => x - y);
  await untilSessions(rig, survivors, AGENTS);
  const after = await sessionsByReplica(rig, survivors);

  return {
    'fleet-rss-per-tunnel': rss / AGENTS / KiB,
    'fleet-idle-cpu': (100 * cpu) / seconds,
    'fleet-redis-commands': commands / seconds,
    'fleet-redis-per-cluster': ((commands / seconds) * 60) / AGENTS,
    'fleet-redis-memory-per-cluster': redisBytes / AGENTS,
    'storm-all-back': back[back.length - 1]! / 1000,
    'storm-median-back': back[Math.floor(back.length / 2)]! / 1000,
    'storm-share-excess': 100 * (Math.max(...after) / (AGENTS / survivors.length) - 1),
  };
}

/** Waits until the replicas' session gauges add up to `n` (the gateways count a tunnel once its hello is accepted). */
async function untilSessions(rig: FleetRig, replicas: number[], n: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const counts = await sessionsByReplica(rig, replicas);
    if (counts.reduce((a, b) => a + b, 0) === n) return;
    if (Date.now() > deadline) throw new Error(`fleet: replicas ${replicas.join(', ')} hold ${counts.join(' + ')} tunnels, not ${n}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
