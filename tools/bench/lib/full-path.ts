// The full path the issue measures, every part a real process with TLS on
// every hop as in production:
//
//   runner (this process: @pipeops/tunnel-client, or HTTPS to the gateway's /k8s/clusters/…)
//     → `pipeops-tunnel gateway --dev` (TLS) → `pipeops-tunnel connect` (agent)
//     → the bench upstream (TLS, ../upstream.ts, a stand-in for kube-apiserver)
//
// next to the same runner straight to the upstream (direct), and, when the
// peer binary is built, chisel as a reverse tunnel over the same loopback
// (runner → chisel server → chisel client → upstream, TLS end to end).
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, type Dispatcher } from 'undici';
import { connect, type Tunnel as RunnerTunnel } from '@pipeops/tunnel-client';
import { startTunnel, writeKubeconfig, type Tunnel } from '@pipeops/tunnel-e2e/harness/tunnel';
import { startChisel, type ChiselPeer } from './chisel.ts';
import type { Processes, Side } from './cost.ts';
import { startNodeFloor, type NodeFloor } from './node-floor.ts';
import { startReadyChild } from './ready-child.ts';
import { rigDir } from './rig-dir.ts';
import { addRunnerTokens } from './tokens-file.ts';

const UPSTREAM_PATH = fileURLToPath(new URL('../upstream.ts', import.meta.url));
export const BENCH_CLUSTER = 'bench';

/** Where a runner sends a request: an origin, the path prefix in front of API paths, headers, and the dispatcher. */
export interface Target {
  /** e.g. `https://127.0.0.1:1234` */
  origin: string;
  /** Put in front of the API path: '' or `/k8s/clusters/bench`. */
  prefix: string;
  headers: Record<string, string>;
  dispatcher: Dispatcher;
}

export interface Upstream {
  url: string;
  port: number;
  controlUrl: string;
  caFile: string;
  token: string;
  pid: number;
  close(): Promise<void>;
}

/** Starts ../upstream.ts as a child process and waits for its READY line. */
export async function startUpstream(dir: string): Promise<Upstream> {
  const c = await startReadyChild('bench upstream', [UPSTREAM_PATH, '--dir', dir]);
  return { ...(JSON.parse(c.payload) as Omit<Upstream, 'pid' | 'close'>), pid: c.pid, close: () => c.close() };
}

export interface FullPathOptions {
  /** Merged into the agent's config file (e.g. `{ tunnel: { … } }`). */
  agentConfig?: Record<string, unknown>;
  /** Added to the agent's environment. */
  agentEnv?: Record<string, string>;
  gatewayConfig?: Record<string, unknown>;
  /** The URL the agent dials instead of the gateway's (e.g. a latency relay in front of it). */
  agentDialUrl?: (gatewayUrl: string) => Promise<string>;
  /** Start chisel next to the tunnel (when its binary is built). Default false. */
  peer?: boolean;
  /** Node options of the gateway and the agent (e.g. an inspector preload, see ../garbage.ts). */
  relayNodeArgs?: string[];
  /** mux options of the runner's tunnel-client session. */
  runnerMux?: Parameters<typeof connect>[0]['mux'];
  /** Ids of more runners, each given its own token (every cluster) in the gateway's tokens file. Default none. */
  runners?: string[];
  /** Tokens-file `limits` of some of those runners, by id (e.g. `{ bytes_per_second: 10_000_000 }`). */
  runnerLimits?: Record<string, Record<string, number>>;
}

/** A runner of {@link FullPathOptions.runners}: its token and its way in through the gateway's /k8s/clusters endpoint. */
export interface ExtraRunner {
  id: string;
  token: string;
  caFile: string;
  /** HTTPS to /k8s/clusters/bench with this runner's token, on an undici Agent of its own (its own connections). */
  viaEndpoint: Target;
}

export interface FullPath {
  dir: string;
  upstream: Upstream;
  tunnel: Tunnel;
  runner: RunnerTunnel;
  agentPid(): number;
  gatewayPid(): number;
  /** Runner → tunnel-client → gateway → agent → upstream. */
  viaClient: Target;
  /** Runner → HTTPS /k8s/clusters/bench on the gateway → agent → upstream. */
  viaEndpoint: Target;
  /** Runner → upstream. */
  direct: Target;
  /** Runner → chisel server → chisel client → upstream; null when not asked for or not built. */
  peer: Target | null;
  chisel: ChiselPeer | null;
  /** The runners of {@link FullPathOptions.runners}, by id. */
  runners: Map<string, ExtraRunner>;
  /** Two bare Node TLS relays in front of the upstream (lib/node-floor.ts), started on first use and closed with the path. */
  nodeFloor(): Promise<NodeFloor>;
  /** The processes a sample of `side` runs through, the runner being this process (empty for `peer` without chisel). */
  costProcesses(side: Side): Processes;
  close(): Promise<void>;
}

/**
 * An undici Agent like any runner would use: keep-alive, no pipelining,
 * trusting `caFile`. HTTP/1.1 only: the upstream also speaks h2 (as
 * kube-apiserver does), and undici over h2 is slower for bulk bodies, which
 * would flatter the tunnel's ratio against direct.
 */
function httpsAgent(caFile: string): Agent {
  return new Agent({ connect: { ca: readFileSync(caFile) }, keepAliveTimeout: 30_000, connections: null, allowH2: false });
}

let profileDir: string | undefined;

/**
 * From now on, every gateway and agent started here writes a V8 CPU profile
 * into `dir` when it exits (`pnpm bench --profile DIR`; node's --cpu-prof,
 * file names carry the pid): the `cost` table says which process spends
 * the CPU, the profiles say on what.
 */
export function profileInto(dir: string): void {
  mkdirSync(dir, { recursive: true });
  profileDir = dir;
}

export async function startFullPath(o: FullPathOptions = {}): Promise<FullPath> {
  const { dir, logDir, closers, close } = rigDir('pipeops-bench-');
  try {
    const upstream = await startUpstream(dir);
    closers.push(() => upstream.close());
    const kubeconfig = writeKubeconfig(join(dir, 'agent.kubeconfig'), {
      server: upstream.url,
      token: upstream.token,
      caData: readFileSync(upstream.caFile, 'utf8'),
      name: BENCH_CLUSTER,
      // As in a pod: the token and the CA are files the agent keeps checking for rotation.
      asFiles: true,
    });
    const tunnel = await startTunnel({
      dir,
      logDir,
      home: dir,
      agents: [{ cluster: BENCH_CLUSTER, kubeconfig }],
      runnerTools: false,
      ...(o.agentConfig ? { agentConfig: o.agentConfig } : {}),
      ...(o.agentEnv ? { agentEnv: o.agentEnv } : {}),
      // The benchmark's runner holds 10,000 watches on one token: the per-runner stream limit (default 1,000) is lifted.
      gatewayConfig: { runners: { max_streams: 0 }, ...o.gatewayConfig },
      ...(o.agentDialUrl ? { agentDialUrl: o.agentDialUrl } : {}),
      ...(profileDir !== undefined || o.relayNodeArgs !== undefined
        ? { nodeArgs: [...(profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...(o.relayNodeArgs ?? [])] }
        : {}),
      // The relays' audit lines go to their log files, not through this process (the runner): see proc.ts.
      output: 'file',
    });
    closers.push(() => tunnel.close());
    const runners = new Map<string, ExtraRunner>();
    if (o.runners !== undefined && o.runners.length > 0) {
      // startTunnel writes the tokens file as <dir>/tunnel/tokens.yaml, with one runner; the others are added to it.
      const tokens = await addRunnerTokens(join(dir, 'tunnel', 'tokens.yaml'), tunnel.gateway(), o.runners, o.runnerLimits);
      for (const [id, token] of tokens) {
        const agent = httpsAgent(tunnel.caFile);
        closers.push(() => agent.close());
        runners.set(id, {
          id,
          token,
          caFile: tunnel.caFile,
          viaEndpoint: {
            origin: tunnel.gatewayUrl,
            prefix: `/k8s/clusters/${BENCH_CLUSTER}`,
            headers: { authorization: `Bearer ${token}` },
            dispatcher: agent,
          },
        });
      }
    }
    const runner = await connect({
      gatewayUrl: tunnel.gatewayUrl,
      token: tunnel.runnerToken,
      cluster: BENCH_CLUSTER,
      ca: readFileSync(tunnel.caFile),
      ...(o.runnerMux ? { mux: o.runnerMux } : {}),
    });
    closers.push(() => runner.close());
    const upstreamAuth = { authorization: `Bearer ${upstream.token}` };
    const endpointAgent = httpsAgent(tunnel.caFile);
    const directAgent = httpsAgent(upstream.caFile);
    closers.push(
      () => endpointAgent.close(),
      () => directAgent.close(),
    );
    let chisel: ChiselPeer | null = null;
    let peer: Target | null = null;
    if (o.peer) {
      chisel = await startChisel({ dir, upstreamPort: upstream.port });
      if (chisel !== null) {
        const c = chisel;
        closers.push(() => c.close());
        const peerAgent = httpsAgent(upstream.caFile);
        closers.push(() => peerAgent.close());
        peer = { origin: `https://127.0.0.1:${chisel.port}`, prefix: '', headers: upstreamAuth, dispatcher: peerAgent };
      }
    }
    const agentPid = (): number => pidOf(tunnel.agents.get(BENCH_CLUSTER)?.proc.child.pid);
    const gatewayPid = (): number => pidOf(tunnel.gateway().child.pid);
    const costProcesses = (side: Side): Processes => {
      const ends = { runner: process.pid, upstream: upstream.pid };
      if (side === 'tunnel') return { ...ends, gateway: gatewayPid(), agent: agentPid() };
      if (side === 'peer') return chisel === null ? {} : { ...ends, chiselServer: chisel.serverPid, chiselClient: chisel.clientPid };
      return ends;
    };
    let floor: Promise<NodeFloor> | undefined;
    const nodeFloor = (): Promise<NodeFloor> => {
      if (floor === undefined) {
        floor = startNodeFloor({ dir, upstreamPort: upstream.port, upstreamCa: upstream.caFile, headers: upstreamAuth });
        const started = floor;
        closers.push(async () => (await started).close());
      }
      return floor;
    };
    return {
      dir,
      upstream,
      tunnel,
      runner,
      chisel,
      peer,
      runners,
      close,
      agentPid,
      gatewayPid,
      costProcesses,
      nodeFloor,
      viaClient: { origin: runner.baseUrl, prefix: '', headers: {}, dispatcher: runner.dispatcher },
      viaEndpoint: {
        origin: tunnel.gatewayUrl,
        prefix: `/k8s/clusters/${BENCH_CLUSTER}`,
        headers: { authorization: `Bearer ${tunnel.runnerToken}` },
        dispatcher: endpointAgent,
      },
      direct: { origin: upstream.url, prefix: '', headers: upstreamAuth, dispatcher: directAgent },
    };
  } catch (err) {
    await close();
    throw err;
  }
}

function pidOf(pid: number | undefined): number {
  if (pid === undefined) throw new Error('process not running');
  return pid;
}
