import { existsSync, readFileSync } from 'node:fs';
import { arch } from 'node:os';
import { fileURLToPath } from 'node:url';
import { smallGet } from '../lib/http-load.ts';
import { cpuSecondsSince, cpuSnapshot, peakRssDuring } from '../lib/proc-stats.ts';
import type { BenchOptions, Rig, Scenario } from './types.ts';

const MB = 1e6;

/** The agent's default `agent.idle_trim_after`, ms: after it an idle agent has given its unused memory back. */
const IDLE_TRIM_AFTER_MS = 10_000;

/** How the agent process allocates: glibc's malloc (an `npm install`), or jemalloc as the container image sets it up. */
interface Allocator {
  /** Prefix of the metric names. */
  prefix: string;
  /** What the figures describe. */
  label: string;
  env: Record<string, string>;
}

const GLIBC: Allocator = { prefix: 'idle-agent', label: 'glibc malloc', env: {} };

/**
 * The image's allocator (LD_PRELOAD of jemalloc with the Dockerfile's
 * MALLOC_CONF, read from the Dockerfile so that there is one place for it),
 * when this machine has Debian's libjemalloc2; undefined otherwise.
 */
export function imageAllocator(): Allocator | undefined {
  const triplet = arch() === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  const lib = `/usr/lib/${triplet}/libjemalloc.so.2`;
  if (!existsSync(lib)) return undefined;
  const conf = /MALLOC_CONF=(\S+)/.exec(readFileSync(fileURLToPath(new URL('../../../Dockerfile', import.meta.url)), 'utf8'))?.[1];
  if (conf === undefined) throw new Error('the Dockerfile sets no MALLOC_CONF: the image-allocator idle scenario cannot follow it');
  return { prefix: 'idle-agent-jemalloc', label: "the image's jemalloc", env: { LD_PRELOAD: lib, MALLOC_CONF: conf } };
}

/** Small GETs an agent relays before it idles in the after-traffic variant. */
const TRAFFIC_REQUESTS = 1_000;

/**
 * A connected agent with nothing to do, for 60 s (10 s with --quick): its
 * RSS at the end and the CPU it used, as a percentage of one core. Keepalive
 * pings, status reports and API-server health checks run as configured by
 * default. Measured once the agent has settled: its start-up done and its
 * first quiet period over (it trims memory then, as after every burst).
 * `afterTraffic`: the agent first relays {@link TRAFFIC_REQUESTS} small GETs
 * (an agent idle again after a deploy: undici's HTTP/1.1 parser compiled,
 * the allocator holding what the requests freed), otherwise it has relayed
 * nothing yet.
 */
export function idleAgentScenario(allocator: Allocator = GLIBC, afterTraffic = false): Scenario {
  const prefix = `${allocator.prefix}${afterTraffic ? '-after-traffic' : ''}`;
  const rss = `${prefix}-rss`;
  const cpu = `${prefix}-cpu`;
  const relayed = afterTraffic ? `, after relaying ${TRAFFIC_REQUESTS.toLocaleString('en')} small GETs` : ', before any runner request';
  return {
    name: prefix,
    metrics: [
      {
        name: rss,
        unit: 'MB',
        description: `RSS of a connected, idle agent on ${allocator.label}${relayed} (largest of samples every 100 ms over the period)`,
        target: { kind: 'at_most', value: 80 },
      },
      {
        name: cpu,
        unit: '% core',
        description: 'CPU time (user + system) used while idle, per wall time (CPU ≈ 0 read as ≤ 0.5 % of one core)',
        target: { kind: 'at_most', value: 0.5 },
      },
    ],
    rounds: () => 1,
    async setup(o: BenchOptions): Promise<Rig> {
      // The agent's default status and API-health period (30 s); the harness otherwise runs agents at 5 s.
      const path = await o.startFullPath({
        agentConfig: { agent: { poll_interval: '30s', idle_trim_after: `${IDLE_TRIM_AFTER_MS}ms` } },
        agentEnv: allocator.env,
      });
      const seconds = o.quick ? 10 : 60;
      return {
        async tunnel() {
          const pid = path.agentPid();
          for (let i = 0; afterTraffic && i < TRAFFIC_REQUESTS; i++) await smallGet(path.viaClient);
          // Let start-up work (first status report, first health check) finish, and the first quiet period pass
          // (the trimmer looks every quarter period).
          await new Promise((r) => setTimeout(r, 1.25 * IDLE_TRIM_AFTER_MS + 2_000));
          const cpu0 = cpuSnapshot(pid);
          const t0 = process.hrtime.bigint();
          const { peak } = await peakRssDuring([pid], () => new Promise((r) => setTimeout(r, seconds * 1000)), 100);
          const wall = Number(process.hrtime.bigint() - t0) / 1e9;
          return { [rss]: peak[0]! / MB, [cpu]: (100 * cpuSecondsSince(cpu0)) / wall };
        },
        direct: null,
        peer: null,
        close: () => path.close(),
      };
    },
  };
}

/** The idle agent on glibc's malloc, as `npm install` runs it. */
export const idleAgent = idleAgentScenario();

/** The same after relaying requests. */
export const idleAgentAfterTraffic = idleAgentScenario(GLIBC, true);
