// The tunnel, with the real commands as separate processes: the gateway
// (`pipeops-tunnel gateway --dev`, TLS), one agent per cluster name
// (`pipeops-tunnel connect`, with a service-account token of its own), and a
// `pipeops-tunnel proxy` per cluster. The gateway can be killed and started
// again on the same port (same dev CA) for the chaos scenarios.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { start, until, type Proc } from './proc.ts';
import { runCommand } from './run-command.ts';
import { CLI } from './paths.ts';

export interface AgentSpec {
  cluster: string;
  kubeconfig: string;
  /** Merged into this agent's config file after `agentConfig` (e.g. `{ kubernetes: { access_as: 'runner' } }`). */
  config?: Record<string, unknown>;
}

export interface Tunnel {
  gatewayUrl: string;
  caFile: string;
  runnerToken: string;
  /** The runner's id in the tokens file (the agents' `access_as: runner` acts as `pipeops:runner:<id>`). */
  runnerId: string;
  adminToken: string;
  gateway(): Proc;
  agents: Map<string, { proc: Proc; healthUrl: string }>;
  proxies: Map<string, { proc: Proc; url: string }>;
  /** kubeconfig file (from `pipeops-tunnel kubeconfig`) for cluster C's own address on the gateway: server https://GATEWAY, tls-server-name C.clusters.localhost. */
  gatewayKubeconfig(cluster: string): string;
  killGateway(): Promise<void>;
  gatewayAlive(): boolean;
  startGateway(): Promise<void>;
  /** Resolves when every agent's /ready is 200. */
  agentsReady(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

const secret = () => randomBytes(24).toString('base64url');

export interface StartTunnelOptions {
  dir: string;
  logDir: string;
  home: string;
  agents: AgentSpec[];
  /** Start a `pipeops-tunnel proxy` and write a runner kubeconfig per cluster. Default true. */
  runnerTools?: boolean;
  /** Merged into each agent's config file (e.g. `{ tunnel: { stream_window: '16MiB' } }`). */
  agentConfig?: Record<string, unknown>;
  /** The one runner entry of the tokens file: its id (default `e2e-runner`) and `groups` (default none). */
  runner?: { id?: string; groups?: string[] };
  /** Merged into the gateway's config file. */
  gatewayConfig?: Record<string, unknown>;
  /** The URL agents dial, given the gateway's (default: the gateway's own), e.g. a relay in front of it. */
  agentDialUrl?: (gatewayUrl: string) => Promise<string>;
  /** Added to each agent's environment (e.g. the container image's allocator). Default none. */
  agentEnv?: Record<string, string>;
  /** Node options for the gateway and the agents, before the CLI (e.g. `--cpu-prof`). Default none. */
  nodeArgs?: string[];
  /** How the gateway's and the agents' output reaches their log files (see proc.ts `StartOptions.output`). Default `pipe`. */
  output?: 'pipe' | 'file';
}

/** `base` with every section of `extra` merged in (one level deep: config files are section → key). */
function mergeSections(base: Record<string, Record<string, unknown>>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [section, value] of Object.entries(extra)) {
    out[section] = typeof value === 'object' && value !== null ? { ...base[section], ...(value as Record<string, unknown>) } : value;
  }
  return out;
}

export async function startTunnel(o: StartTunnelOptions): Promise<Tunnel> {
  const node = process.execPath;
  const runnerId = o.runner?.id ?? 'e2e-runner';
  const tokens = { runner: secret(), admin: secret(), agents: new Map(o.agents.map((a) => [a.cluster, secret()])) };
  const tdir = join(o.dir, 'tunnel');
  mkdirSync(join(tdir, 'gw-state'), { recursive: true });
  const tokensFile = join(tdir, 'tokens.yaml');
  writeFileSync(
    tokensFile,
    stringify({
      agents: o.agents.map((a) => ({ cluster: a.cluster, token: tokens.agents.get(a.cluster) })),
      runners: [{ id: runnerId, token: tokens.runner, clusters: ['*'], ...(o.runner?.groups !== undefined ? { groups: o.runner.groups } : {}) }],
      admins: [{ token: tokens.admin }],
    }),
    { mode: 0o600 },
  );
  const gwConfig = join(tdir, 'gateway.yaml');
  writeFileSync(gwConfig, stringify(mergeSections({ gateway: { state_dir: join(tdir, 'gw-state'), drain_timeout: '2s' } }, o.gatewayConfig)));

  const nodeArgs = o.nodeArgs ?? [];
  let port = 0;
  let gateway: Proc | undefined;
  let generation = 0;
  let caFile = '';
  const launch = async () => {
    generation += 1;
    gateway = start(
      `gateway-${generation}`,
      node,
      [...nodeArgs, CLI, 'gateway', '--dev', '--listen', `127.0.0.1:${port}`, '--tokens', tokensFile, '--config', gwConfig],
      {
        logDir: o.logDir,
        output: o.output ?? 'pipe',
      },
    );
    const listening = await gateway.waitForRecord('gateway listening', (r) => typeof r.url === 'string' && typeof r.port === 'number', 30_000);
    port = Number(listening.port);
    caFile = String((await gateway.waitForRecord('dev CA', (r) => typeof r.caFile === 'string', 30_000)).caFile);
  };
  await launch();
  const gatewayUrl = `https://127.0.0.1:${port}`;
  const dialUrl = o.agentDialUrl === undefined ? gatewayUrl : await o.agentDialUrl(gatewayUrl);

  const agents = new Map<string, { proc: Proc; healthUrl: string }>();
  for (const a of o.agents) {
    const cfg = join(tdir, `agent-${a.cluster}.yaml`);
    const shared = mergeSections(
      {
        agent: { cluster_name: a.cluster, name: `e2e-agent-${a.cluster}`, port: 0, listen_host: '127.0.0.1', poll_interval: '5s' },
        pipeops: { api_url: dialUrl, tls: { ca_file: caFile }, reconnect: { interval: '200ms', max_interval: '1s' } },
        kubernetes: { kubeconfig: a.kubeconfig },
      },
      o.agentConfig,
    );
    writeFileSync(cfg, stringify(mergeSections(shared as Record<string, Record<string, unknown>>, a.config)));
    const proc = start(`agent-${a.cluster}`, node, [...nodeArgs, CLI, 'connect', '--config', cfg], {
      logDir: o.logDir,
      output: o.output ?? 'pipe',
      env: { ...process.env, ...o.agentEnv, PIPEOPS_PIPEOPS_TOKEN: tokens.agents.get(a.cluster) ?? '' },
    });
    const rec = await proc.waitForRecord('health listener', (r) => typeof r.msg === 'string' && r.msg.startsWith('health listener on'), 30_000);
    agents.set(a.cluster, { proc, healthUrl: `http://${String(rec.msg).slice('health listener on '.length)}` });
  }
  const agentsReady = async (timeoutMs: number) => {
    for (const [cluster, a] of agents) {
      await until(`agent ${cluster} /ready`, async () => ((await fetch(`${a.healthUrl}/ready`)).status === 200 ? true : undefined), timeoutMs, 100).catch(
        (err: Error) => {
          throw new Error(`${err.message}\n${a.proc.tail()}`);
        },
      );
    }
  };
  await agentsReady(60_000);

  const runnerEnv = { ...process.env, PIPEOPS_RUNNER_TOKEN: tokens.runner };
  const proxies = new Map<string, { proc: Proc; url: string }>();
  for (const a of o.runnerTools === false ? [] : o.agents) {
    const proc = start(`proxy-${a.cluster}`, node, [CLI, 'proxy', '--gateway', gatewayUrl, '--cluster', a.cluster, '--ca', caFile, '--listen', '127.0.0.1:0'], {
      logDir: o.logDir,
      env: runnerEnv,
    });
    const rec = await proc.waitForRecord('proxy listening', (r) => typeof r.url === 'string', 30_000);
    proxies.set(a.cluster, { proc, url: String(rec.url) });
  }

  const kubeconfigs = new Map<string, string>();
  for (const a of o.runnerTools === false ? [] : o.agents) {
    // --address sni (the default, said explicitly): fail here rather than fall back to the path form.
    const r = await runCommand(node, [CLI, 'kubeconfig', '--gateway', gatewayUrl, '--cluster', a.cluster, '--ca', caFile, '--address', 'sni'], {
      home: o.home,
      env: { PIPEOPS_RUNNER_TOKEN: tokens.runner },
      timeoutMs: 30_000,
    });
    if (r.code !== 0) throw new Error(`pipeops-tunnel kubeconfig failed: ${r.stderr}`);
    const file = join(tdir, `runner-${a.cluster}.kubeconfig`);
    writeFileSync(file, r.stdout, { mode: 0o600 });
    kubeconfigs.set(a.cluster, file);
  }

  return {
    gatewayUrl,
    caFile,
    runnerToken: tokens.runner,
    runnerId,
    adminToken: tokens.admin,
    agents,
    proxies,
    agentsReady,
    gateway: () => {
      if (gateway === undefined) throw new Error('gateway stopped');
      return gateway;
    },
    gatewayKubeconfig: (cluster) => {
      const f = kubeconfigs.get(cluster);
      if (f === undefined) throw new Error(`no kubeconfig for ${cluster}`);
      return f;
    },
    async killGateway() {
      await gateway?.stop('SIGKILL', 1_000);
      gateway = undefined;
    },
    startGateway: launch,
    gatewayAlive: () => gateway?.alive === true,
    async close() {
      for (const p of proxies.values()) await p.proc.stop('SIGTERM', 3_000);
      for (const a of agents.values()) await a.proc.stop('SIGTERM', 5_000);
      await gateway?.stop('SIGTERM', 5_000);
    },
  };
}

/** A kubeconfig for `server` with a bearer token and a CA (PEM); `as`: the user acts as someone else (kubectl sends `Impersonate-*`). */
export function writeKubeconfig(
  file: string,
  o: {
    server: string;
    token?: string;
    caData?: string;
    name?: string;
    as?: { user: string; groups?: string[] };
    /** The token and the CA in files of their own beside the kubeconfig (`tokenFile`, `certificate-authority`), as a pod's service account has them. */
    asFiles?: boolean;
  },
): string {
  const name = o.name ?? 'e2e';
  const cluster: Record<string, unknown> = { server: o.server };
  const user: Record<string, unknown> = {};
  if (o.asFiles === true) {
    if (o.caData !== undefined) cluster['certificate-authority'] = writeBeside(file, 'ca.crt', o.caData);
    if (o.token !== undefined) user.tokenFile = writeBeside(file, 'token', o.token);
  } else {
    if (o.caData !== undefined) cluster['certificate-authority-data'] = Buffer.from(o.caData).toString('base64');
    if (o.token !== undefined) user.token = o.token;
  }
  if (o.as !== undefined) {
    user.as = o.as.user;
    if (o.as.groups !== undefined) user['as-groups'] = o.as.groups;
  }
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name, cluster }],
      users: [{ name, user }],
      contexts: [{ name, context: { cluster: name, user: name } }],
      'current-context': name,
    }),
    { mode: 0o600 },
  );
  return file;
}

/** Writes `content` to `{file}.{suffix}` (owner-only) and returns that path. */
function writeBeside(file: string, suffix: string, content: string): string {
  const path = `${file}.${suffix}`;
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

export function readText(file: string): string {
  return readFileSync(file, 'utf8');
}
