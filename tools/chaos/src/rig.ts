// The processes of the chaos harness, every one real and restartable on the
// same port: the API server (../upstream.ts), the gateway
// (`pipeops-tunnel gateway --dev`) and the agent (`pipeops-tunnel connect`),
// which dials the gateway through a fault relay (./fault-relay.ts). The
// runner is the harness process itself (./streams.ts).
//
//   runner ──HTTPS/WSS──► gateway ◄──TLS WebSocket── relay ◄── agent ──HTTPS──► upstream
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { start, type Proc } from '@pipeops/tunnel-e2e/harness/proc';
import { writeKubeconfig } from '@pipeops/tunnel-e2e/harness/tunnel';
import { testCertificates, waitFor } from '@pipeops/tunnel-testkit';
import { stringify } from 'yaml';
import { startFaultRelay, type FaultRelay } from './fault-relay.ts';

const CLI = fileURLToPath(new URL('../../../packages/cli/bin/pipeops-tunnel.js', import.meta.url));
const UPSTREAM = fileURLToPath(new URL('../upstream.ts', import.meta.url));
/** The cluster name the agent serves. */
export const CHAOS_CLUSTER = 'chaos';
/** How long a process may take to start (print its ready record), in ms. */
const START_TIMEOUT_MS = 30_000;

/** The three processes a fault can hit. */
export type Target = 'gateway' | 'agent' | 'apiserver';
export const TARGETS: readonly Target[] = ['gateway', 'agent', 'apiserver'];

export interface Rig {
  dir: string;
  /** `https://127.0.0.1:<port>`, the same across gateway restarts. */
  gatewayUrl: string;
  /** PEM of the gateway's dev CA. */
  gatewayCa: string;
  runnerToken: string;
  upstreamUrl: string;
  upstreamCa: string;
  upstreamToken: string;
  relay: FaultRelay;
  pid(t: Target): number;
  /** Which start of `t` this is (1, 2, …). */
  generation(t: Target): number;
  /** The agent's /health, /ready, /metrics listener (changes with each start). */
  agentHealthUrl(): string;
  /** SIGKILLs `t` and waits for it to be gone. */
  kill(t: Target): Promise<void>;
  /** Starts `t` again (on the same port for the gateway and the API server) and waits until it is listening. */
  restart(t: Target): Promise<void>;
  /** SIGSTOP / SIGCONT. */
  signal(t: Target, sig: 'SIGSTOP' | 'SIGCONT'): void;
  alive(t: Target): boolean;
  /** Open file descriptors of `t` (from /proc), or of the harness itself with 'runner'. */
  fds(t: Target | 'runner'): number;
  /** The last lines `t` printed (for failure reports). */
  tail(t: Target, lines?: number): string;
  close(): Promise<void>;
}

export interface RigOptions {
  /** Keep the logs folder after close (default false: removed). */
  keepLogs?: boolean;
}

/** Starts upstream, gateway, relay and agent, and waits for the agent to be ready. */
export async function startRig(o: RigOptions = {}): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'pipeops-chaos-'));
  const logDir = join(dir, 'logs');
  mkdirSync(join(dir, 'gw-state'), { recursive: true });
  mkdirSync(logDir, { recursive: true });
  const node = process.execPath;
  const procs = new Map<Target, Proc>();
  const generations = new Map<Target, number>(TARGETS.map((t) => [t, 0]));
  let relay: FaultRelay | undefined;
  const close = async (): Promise<void> => {
    for (const t of ['agent', 'gateway', 'apiserver'] as const) {
      const p = procs.get(t);
      if (p === undefined) continue;
      p.signal('SIGCONT');
      await p.stop('SIGTERM', 3_000);
    }
    await relay?.close();
    if (o.keepLogs !== true) rmSync(dir, { recursive: true, force: true });
  };
  const launch = (t: Target, args: string[], env?: NodeJS.ProcessEnv): Proc => {
    const g = (generations.get(t) ?? 0) + 1;
    generations.set(t, g);
    const p = start(`${t}-${g}`, node, args, { logDir, ...(env === undefined ? {} : { env }) });
    procs.set(t, p);
    return p;
  };

  try {
    // The API server: its identity in a file, so every start has the same certificate and token.
    const certs = testCertificates('chaos-upstream');
    const upstreamToken = randomBytes(24).toString('base64url');
    const identity = join(dir, 'upstream-identity.json');
    writeFileSync(identity, JSON.stringify({ cert: certs.cert, key: certs.key, token: upstreamToken }), { mode: 0o600 });
    let upstreamPort = 0;
    const startUpstream = async (): Promise<void> => {
      const p = launch('apiserver', [UPSTREAM, '--identity', identity, '--port', String(upstreamPort)]);
      const line = await p.waitForLine('READY', /^READY /, START_TIMEOUT_MS);
      upstreamPort = (JSON.parse(line.slice(6)) as { port: number }).port;
    };
    await startUpstream();
    const upstreamUrl = `https://127.0.0.1:${upstreamPort}`;

    // The gateway, with one runner and one agent token.
    const runnerToken = randomBytes(24).toString('base64url');
    const agentToken = randomBytes(24).toString('base64url');
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(
      tokensFile,
      stringify({ agents: [{ cluster: CHAOS_CLUSTER, token: agentToken }], runners: [{ id: 'chaos-runner', token: runnerToken, clusters: ['*'] }] }),
      { mode: 0o600 },
    );
    const gatewayConfig = join(dir, 'gateway.yaml');
    writeFileSync(gatewayConfig, stringify({ gateway: { state_dir: join(dir, 'gw-state'), drain_timeout: '2s' } }));
    let gatewayPort = 0;
    let gatewayCaFile = '';
    const startGateway = async (): Promise<void> => {
      const p = launch('gateway', [CLI, 'gateway', '--dev', '--listen', `127.0.0.1:${gatewayPort}`, '--tokens', tokensFile, '--config', gatewayConfig]);
      const rec = await p.waitForRecord('gateway listening', (r) => typeof r.url === 'string' && typeof r.port === 'number', START_TIMEOUT_MS);
      gatewayPort = Number(rec.port);
      gatewayCaFile = String((await p.waitForRecord('dev CA', (r) => typeof r.caFile === 'string', START_TIMEOUT_MS)).caFile);
    };
    await startGateway();
    const gatewayUrl = `https://127.0.0.1:${gatewayPort}`;
    relay = await startFaultRelay(gatewayPort);

    // The agent, dialing the relay.
    const kubeconfig = writeKubeconfig(join(dir, 'agent.kubeconfig'), { server: upstreamUrl, token: upstreamToken, caData: certs.caCert, name: CHAOS_CLUSTER });
    const agentConfig = join(dir, 'agent.yaml');
    writeFileSync(
      agentConfig,
      stringify({
        agent: { cluster_name: CHAOS_CLUSTER, name: 'chaos-agent', port: 0, listen_host: '127.0.0.1', poll_interval: '5s', shutdown_timeout: '1s' },
        pipeops: { api_url: `https://127.0.0.1:${relay.port}`, tls: { ca_file: gatewayCaFile }, reconnect: { interval: '200ms', max_interval: '1s' } },
        kubernetes: { kubeconfig },
      }),
    );
    let healthUrl = '';
    const startAgent = async (): Promise<void> => {
      const p = launch('agent', [CLI, 'connect', '--config', agentConfig], { ...process.env, PIPEOPS_PIPEOPS_TOKEN: agentToken });
      const rec = await p.waitForRecord('health listener', (r) => typeof r.msg === 'string' && r.msg.startsWith('health listener on'), START_TIMEOUT_MS);
      healthUrl = `http://${String(rec.msg).slice('health listener on '.length)}`;
    };
    await startAgent();
    // Ready: the agent's /ready says connected (the first run must not race the first dial).
    await waitFor(async () => (await fetch(`${healthUrl}/ready`)).status === 200, { timeoutMs: START_TIMEOUT_MS, intervalMs: 50, what: 'the agent /ready' });

    const proc = (t: Target): Proc => {
      const p = procs.get(t);
      if (p === undefined) throw new Error(`${t} not started`);
      return p;
    };
    return {
      dir,
      gatewayUrl,
      gatewayCa: readFileSync(gatewayCaFile, 'utf8'),
      runnerToken,
      upstreamUrl,
      upstreamCa: certs.caCert,
      upstreamToken,
      relay,
      pid: (t) => proc(t).child.pid ?? -1,
      generation: (t) => generations.get(t) ?? 0,
      agentHealthUrl: () => healthUrl,
      async kill(t) {
        await proc(t).stop('SIGKILL', 1_000);
      },
      async restart(t) {
        if (proc(t).alive) throw new Error(`restart: ${t} is still running`);
        if (t === 'gateway') await startGateway();
        else if (t === 'agent') await startAgent();
        else await startUpstream();
      },
      signal: (t, sig) => proc(t).signal(sig),
      alive: (t) => proc(t).alive,
      fds: (t) => {
        const pid = t === 'runner' ? process.pid : proc(t).child.pid;
        try {
          return readdirSync(`/proc/${pid}/fd`).length;
        } catch {
          return -1;
        }
      },
      tail: (t, lines = 20) => proc(t).tail(lines),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
