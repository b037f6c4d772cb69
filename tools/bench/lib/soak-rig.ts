// The soak's rig, every part a real process with TLS on every hop:
//
//   runner (this process: HTTPS and WebSockets to the gateway's /k8s/clusters/soak,
//           and @pipeops/tunnel-client over /ws/runner)
//     → `pipeops-tunnel gateway --dev` → `pipeops-tunnel connect` (agent)
//     → ../soak-upstream.ts (the testkit's fake kube-apiserver)
//
// The gateway and the agent are started with `--inspect=127.0.0.1:0` on
// node's command line (the harness's nodeArgs), so the soak can force a full
// GC in them and read their heap through the inspector
// (./inspector-client.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { connect, type Tunnel as RunnerTunnel } from '@pipeops/tunnel-client';
import { startTunnel, writeKubeconfig, type Tunnel } from '@pipeops/tunnel-e2e/harness/tunnel';
import type { Proc } from '@pipeops/tunnel-e2e/harness/proc';
import { connectInspector, inspectorUrl, type Inspector, type MemoryUsage } from './inspector-client.ts';
import { fdCount, rssBytes } from './proc-stats.ts';
import { startReadyChild } from './ready-child.ts';
import { rigDir } from './rig-dir.ts';
import { scrapeStreamAccounting, type KindAccounting } from './stream-accounting.ts';
import type { SoakTargets } from './soak-streams.ts';

const UPSTREAM_PATH = fileURLToPath(new URL('../soak-upstream.ts', import.meta.url));
export const SOAK_CLUSTER = 'soak';

export type SoakSide = 'gateway' | 'agent';
export const SOAK_SIDES: readonly SoakSide[] = ['gateway', 'agent'];

/** One process's state at one moment, after a forced full GC. */
export interface ProcessSnapshot {
  /** Open file descriptors (/proc/PID/fd). */
  fds: number;
  /** RSS from /proc/PID/status, bytes. */
  rss: number;
  /** process.memoryUsage() in the process, after the GC. */
  memory: MemoryUsage;
  /** Stream accounting from its /metrics, per kind. */
  streams: Map<string, KindAccounting>;
}

export interface SoakRigOptions {
  /** Environment of the gateway and the agent on top of this process's (e.g. `{ MALLOC_ARENA_MAX: '2' }`). */
  env?: Record<string, string>;
  /** Node options of the gateway and the agent besides `--inspect` (e.g. `--max-semi-space-size=2`). */
  nodeOptions?: string[];
  /** Merged into the agent's and the gateway's config files. */
  agentConfig?: Record<string, unknown>;
  gatewayConfig?: Record<string, unknown>;
}

export interface SoakRig {
  dir: string;
  /** The gateway's and the agent's output (pino JSON lines), one file each. */
  logDir: string;
  targets: SoakTargets;
  pid(side: SoakSide): number;
  /** A fresh set of keep-alive pools for the endpoint target; the old ones are closed (their sockets leave the gateway). */
  renewRunnerConnections(): Promise<void>;
  /** Forces a full GC in both processes, then reads fds, RSS, heap and stream accounting of each. */
  snapshot(): Promise<Record<SoakSide, ProcessSnapshot>>;
  /** Tunnel streams the runner's tunnel-client holds open now (0 once nothing is in flight). */
  runnerActiveStreams(): number;
  /** process.memoryUsage() of one process now, no GC forced. */
  memoryUsage(side: SoakSide): Promise<MemoryUsage>;
  close(): Promise<void>;
}

/** Waits for the inspector line on a harness process's stderr. */
async function inspectorOf(proc: Proc): Promise<Inspector> {
  const line = await proc.waitForLine('inspector address', (l) => inspectorUrl(l) !== undefined, 30_000);
  return connectInspector(inspectorUrl(line)!, proc.name);
}

export async function startSoakRig(o: SoakRigOptions = {}): Promise<SoakRig> {
  const { dir, logDir, closers, close } = rigDir('pipeops-soak-');
  try {
    const upstreamChild = await startReadyChild('soak upstream', [UPSTREAM_PATH, '--dir', dir]);
    closers.push(() => upstreamChild.close());
    const upstream = JSON.parse(upstreamChild.payload) as { url: string; caFile: string; token: string };
    const kubeconfig = writeKubeconfig(join(dir, 'agent.kubeconfig'), {
      server: upstream.url,
      token: upstream.token,
      caData: readFileSync(upstream.caFile, 'utf8'),
      name: SOAK_CLUSTER,
    });

    // The harness starts the gateway and the agent with this process's environment: set for them, then restored.
    const saved = { ...process.env };
    Object.assign(process.env, o.env ?? {});
    // Under --inspect the launcher does not re-execute node for its young-generation cap: set here as it would.
    const heap = (o.nodeOptions ?? []).some((a) => a.startsWith('--max-semi-space-size')) ? [] : ['--max-semi-space-size=8'];
    let tunnel: Tunnel;
    try {
      tunnel = await startTunnel({
        dir,
        logDir,
        home: dir,
        agents: [{ cluster: SOAK_CLUSTER, kubeconfig }],
        runnerTools: false,
        ...(o.agentConfig ? { agentConfig: o.agentConfig } : {}),
        // The soak's runner holds many streams on one token: the per-runner stream limit is lifted.
        gatewayConfig: { runners: { max_streams: 0 }, ...o.gatewayConfig },
        nodeArgs: ['--inspect=127.0.0.1:0', ...heap, ...(o.nodeOptions ?? [])],
        // The relays' audit lines go to their log files, not through this process (the runner): see proc.ts.
        output: 'file',
      });
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    closers.push(() => tunnel.close());
    const agent = tunnel.agents.get(SOAK_CLUSTER);
    if (agent === undefined) throw new Error('soak: no agent started');
    const procs: Record<SoakSide, Proc> = { gateway: tunnel.gateway(), agent: agent.proc };
    const inspectors: Record<SoakSide, Inspector> = { gateway: await inspectorOf(procs.gateway), agent: await inspectorOf(procs.agent) };
    closers.push(async () => {
      for (const side of SOAK_SIDES) inspectors[side].close();
    });

    const ca = readFileSync(tunnel.caFile);
    const newPool = (): Agent => new Agent({ connect: { ca }, keepAliveTimeout: 4_000, connections: null, allowH2: false });
    let endpointPool = newPool();
    closers.push(() => endpointPool.close());
    const metricsPool = newPool();
    closers.push(() => metricsPool.close());
    const runner: RunnerTunnel = await connect({ gatewayUrl: tunnel.gatewayUrl, token: tunnel.runnerToken, cluster: SOAK_CLUSTER, ca });
    closers.push(() => runner.close());

    const auth = { authorization: `Bearer ${tunnel.runnerToken}` };
    const prefix = `/k8s/clusters/${SOAK_CLUSTER}`;
    const targets: SoakTargets = {
      endpoint: { origin: tunnel.gatewayUrl, prefix, headers: auth, dispatcher: endpointPool },
      client: { origin: runner.baseUrl, prefix: '', headers: {}, dispatcher: runner.dispatcher },
      ws: { origin: tunnel.gatewayUrl.replace(/^https:/, 'wss:'), prefix, headers: auth, ca },
    };
    const pid = (side: SoakSide): number => {
      const p = procs[side].child.pid;
      if (p === undefined || !procs[side].alive) throw new Error(`soak: the ${side} is not running`);
      return p;
    };
    const metricsUrl: Record<SoakSide, string> = { gateway: `${tunnel.gatewayUrl}/metrics`, agent: `${agent.healthUrl}/metrics` };
    return {
      dir,
      logDir,
      targets,
      pid,
      async renewRunnerConnections() {
        const old = endpointPool;
        endpointPool = newPool();
        targets.endpoint = { ...targets.endpoint, dispatcher: endpointPool };
        await old.close();
      },
      async snapshot() {
        const out = {} as Record<SoakSide, ProcessSnapshot>;
        for (const side of SOAK_SIDES) {
          const streams = await scrapeStreamAccounting(metricsUrl[side], metricsPool);
          // Twice: a first full GC can leave garbage that finalizers of the first released.
          await inspectors[side].collectGarbage();
          await inspectors[side].collectGarbage();
          const memory = await inspectors[side].memoryUsage();
          out[side] = { fds: fdCount(pid(side)), rss: rssBytes(pid(side)), memory, streams };
        }
        return out;
      },
      runnerActiveStreams: () => runner.activeStreams,
      memoryUsage: (side) => inspectors[side].memoryUsage(),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
