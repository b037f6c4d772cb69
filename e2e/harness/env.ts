// The whole e2e environment and the three ways a scenario reaches the
// cluster: `direct` (the API server itself, with the agent's own
// service-account token: the same identity and RBAC the tunnel acts with),
// `gateway` (a kubeconfig from `pipeops-tunnel kubeconfig`: the cluster's own
// address, server https://GATEWAY with tls-server-name C.clusters.localhost,
// runner token; `http()` uses the path form https://GATEWAY/k8s/clusters/C,
// so both forms of the route are exercised) and `proxy` (`pipeops-tunnel
// proxy`, plain HTTP on 127.0.0.1). No path prefix is left for kubectl to
// drop, so `get --raw /version` needs no workaround on any target. Five agents, one per cluster name (see
// CLUSTER_NAMES); the trust-boundary ones are described in trust.ts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { connect, type Tunnel as ClientTunnel } from '@pipeops/tunnel-client';
import { ensureBinaries, type Binaries } from './build.ts';
import { startCluster, type Cluster } from './cluster.ts';
import { start, stopAll, type Proc } from './proc.ts';
import { runCommand, cleanEnv, type CommandResult } from './run-command.ts';
import { startTunnel, writeKubeconfig, type Tunnel } from './tunnel.ts';
import { AS_RUNNER_SA, POLICY, READ_ONLY_POLICY, RUNNER_GROUPS, RUNNER_ID, RUNNER_USER, RUNNERS_GROUP, setupTrust } from './trust.ts';
import { CACHE_DIR, REPO_DIR } from './paths.ts';

export type TargetName = 'direct' | 'gateway' | 'proxy';
export const TARGETS: TargetName[] = ['direct', 'gateway', 'proxy'];
/**
 * `full`: the agent with deploy/kubernetes/agent.yaml's ClusterRole; `readonly`: a second agent whose SA is bound to `view`;
 * `as-runner`: `kubernetes.access_as: runner` (acts as `pipeops:runner:<id>`); `policy`: an owner policy (no exec, no
 * secrets, one namespace); `policy-readonly`: `policy.read_only`. See trust.ts.
 */
export type ClusterKind = 'full' | 'readonly' | 'as-runner' | 'policy' | 'policy-readonly';
export const CLUSTER_NAMES: Record<ClusterKind, string> = {
  full: 'e2e',
  readonly: 'e2e-readonly',
  'as-runner': 'e2e-as-runner',
  policy: 'e2e-policy',
  'policy-readonly': 'e2e-policy-readonly',
};
/** Per agent: its config file additions. */
const AGENT_CONFIG: Partial<Record<ClusterKind, Record<string, unknown>>> = {
  'as-runner': { kubernetes: { access_as: 'runner' } },
  policy: { policy: POLICY },
  'policy-readonly': { policy: READ_ONLY_POLICY },
};

export interface RunOpts {
  stdin?: string | Buffer;
  stdinPipe?: boolean;
  timeoutMs?: number;
  env?: Record<string, string>;
  bin?: string;
  cwd?: string;
}

export interface Target {
  name: TargetName;
  cluster: ClusterKind;
  kubeconfig: string;
  /** The server URL of `http()` (for messages; volatile, normalised away); the gateway's kubectl uses the cluster address instead. */
  server: string;
  kubectl(args: string[], opts?: RunOpts): Promise<CommandResult>;
  helm(args: string[], opts?: RunOpts): Promise<CommandResult>;
  /** A long-running kubectl (get -w, logs -f, port-forward), output kept for waitForLine. */
  spawnKubectl(label: string, args: string[], opts?: RunOpts): Proc;
  /** @kubernetes/client-node: direct = the kubeconfig file, gateway = tunnel.kubeConfig(), proxy = the proxy URL. */
  clientKubeConfig(): Promise<KubeConfig>;
  /** One HTTP request to the API server through this target (its credential and CA); body read whole. */
  http(path: string, o?: { method?: string; headers?: Record<string, string>; body?: string | Buffer }): Promise<HttpResult>;
  /** Same, the response body as a stream (WATCH, logs -f); `abort()` ends it. */
  httpStream(
    path: string,
    o?: { method?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: IncomingMessage; abort(): void }>;
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface Env {
  bins: Binaries;
  cluster: Cluster;
  tunnel: Tunnel;
  runDir: string;
  logDir: string;
  home: string;
  kubectlMinor: number;
  systemKubectlMinor?: number;
  target(name: TargetName, cluster?: ClusterKind): Target;
  /** A fresh namespace (with its `default` ServiceAccount: no controller-manager creates it). */
  namespace(name: string): Promise<string>;
  /** A Running pod on the kwok node. */
  pod(ns: string, name: string, extra?: Record<string, unknown>): Promise<void>;
  clientTunnels: ClientTunnel[];
  close(): Promise<void>;
}

async function kubectlMinorOf(bin: string, home: string): Promise<number> {
  const r = await runCommand(bin, ['version', '--client', '-o', 'json'], { home, timeoutMs: 20_000 });
  const v = (JSON.parse(r.stdout) as { clientVersion: { minor: string } }).clientVersion;
  return Number.parseInt(v.minor, 10);
}

export async function setupEnv(log: (s: string) => void): Promise<Env> {
  const bins = await ensureBinaries();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const runDir = join(CACHE_DIR, 'runs', stamp);
  const logDir = join(runDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'pipeops-e2e-'));
  // removed at exit whatever happens (a failed setup has no env to close)
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const home = join(dir, 'home');
  mkdirSync(home);
  log(`run folder ${runDir} (process logs in logs/), cluster state in ${dir}`);
  const kubectlMinor = await kubectlMinorOf(bins.kubectl, home);
  const systemKubectlMinor = bins.systemKubectl !== undefined ? await kubectlMinorOf(bins.systemKubectl, home).catch(() => undefined) : undefined;

  const t0 = performance.now();
  const cluster = await startCluster({ kubesim: bins.kubesim, kubectl: bins.kubectl, kwok: bins.kwok, dir, logDir, home });
  log(`kube-apiserver ready at ${cluster.url}, kwok node Ready (${((performance.now() - t0) / 1000).toFixed(1)} s)`);

  const namespace = async (name: string) => {
    const r = await cluster.admin(['create', 'namespace', name]);
    if (r.code !== 0) throw new Error(`namespace ${name}: ${r.stderr}`);
    // kube-controller-manager creates `default` too, concurrently: AlreadyExists is fine
    const sa = await cluster.admin(['create', 'serviceaccount', 'default', '-n', name]);
    if (sa.code !== 0 && !/already ?exists/i.test(sa.stderr)) throw new Error(`namespace ${name}: ${sa.stderr}`);
    return name;
  };
  const pod = async (ns: string, name: string, extra: Record<string, unknown> = {}) => {
    const r = await cluster.admin(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, labels: { app: name } },
        spec: {
          nodeName: cluster.nodeName,
          automountServiceAccountToken: false,
          containers: [{ name: 'app', image: 'fake-image', ports: [{ containerPort: 8080 }] }],
          ...extra,
        },
      }),
    );
    if (r.code !== 0) throw new Error(`pod ${ns}/${name}: ${r.stderr}`);
    const w = await cluster.admin(['wait', '--for=condition=Ready', `pod/${name}`, '-n', ns, '--timeout=60s']);
    if (w.code !== 0) throw new Error(`pod ${ns}/${name} not Ready: ${w.stderr}`);
  };

  // The agents' identities: deploy/kubernetes/agent.yaml as shipped (its
  // ServiceAccount, ClusterRole and binding), a read-only second agent, and
  // the trust fixture (trust.ts).
  const applied = await cluster.admin(['apply', '-f', join(REPO_DIR, 'deploy', 'kubernetes', 'agent.yaml')]);
  if (applied.code !== 0) throw new Error(`kubectl apply deploy/kubernetes/agent.yaml: ${applied.stderr}`);
  const ro = await cluster.admin(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'pipeops-tunnel-agent-readonly', namespace: 'pipeops-system' } },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: 'pipeops-tunnel-agent-readonly' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
          subjects: [{ kind: 'ServiceAccount', name: 'pipeops-tunnel-agent-readonly', namespace: 'pipeops-system' }],
        },
      ],
    }),
  );
  if (ro.code !== 0) throw new Error(`read-only agent RBAC: ${ro.stderr}`);
  await setupTrust({ admin: cluster.admin, namespace, pod });
  const token = async (sa: string) => {
    const r = await cluster.admin(['create', 'token', sa, '-n', 'pipeops-system', '--duration=6h']);
    if (r.code !== 0 || r.stdout.trim() === '') throw new Error(`kubectl create token ${sa}: ${r.stderr}`);
    return r.stdout.trim();
  };
  // The policy agents use the full agent's service account: what they refuse, their policy refuses.
  const fullToken = await token('pipeops-tunnel-agent');
  const agentTokens: Record<ClusterKind, string> = {
    full: fullToken,
    readonly: await token('pipeops-tunnel-agent-readonly'),
    'as-runner': await token(AS_RUNNER_SA),
    policy: fullToken,
    'policy-readonly': fullToken,
  };
  const kinds = Object.keys(CLUSTER_NAMES) as ClusterKind[];
  const agentKubeconfigs = Object.fromEntries(
    kinds.map((k) => [k, writeKubeconfig(join(dir, `agent-${k}.kubeconfig`), { server: cluster.url, token: agentTokens[k], caData: cluster.caData })]),
  ) as Record<ClusterKind, string>;
  // `direct` on the as-runner cluster: the agent's own credential acting as the runner, exactly what
  // the agent sends (Impersonate-User pipeops:runner:<id>, Impersonate-Group pipeops:runners + the
  // runner's groups), so the API server's answers can be compared.
  const runnerImpersonation = { user: RUNNER_USER, groups: [RUNNERS_GROUP, ...RUNNER_GROUPS] };
  const directKubeconfigs: Record<ClusterKind, string> = {
    ...agentKubeconfigs,
    'as-runner': writeKubeconfig(join(dir, 'direct-as-runner.kubeconfig'), {
      server: cluster.url,
      token: agentTokens['as-runner'],
      caData: cluster.caData,
      as: runnerImpersonation,
    }),
  };

  const t1 = performance.now();
  const tunnel = await startTunnel({
    dir,
    logDir,
    home,
    agents: kinds.map((k) => ({
      cluster: CLUSTER_NAMES[k],
      kubeconfig: agentKubeconfigs[k],
      ...(AGENT_CONFIG[k] !== undefined ? { config: AGENT_CONFIG[k] } : {}),
    })),
    runner: { id: RUNNER_ID, groups: RUNNER_GROUPS },
  });
  log(`gateway ${tunnel.gatewayUrl}, agents ready, proxies up (${((performance.now() - t1) / 1000).toFixed(1)} s)`);

  const proxyKubeconfigs = new Map<ClusterKind, string>();
  for (const k of kinds) {
    const url = tunnel.proxies.get(CLUSTER_NAMES[k])?.url ?? '';
    proxyKubeconfigs.set(k, writeKubeconfig(join(dir, `proxy-${k}.kubeconfig`), { server: url }));
  }
  const clientTunnels: ClientTunnel[] = [];
  const targets = new Map<string, Target>();
  const makeTarget = (name: TargetName, kind: ClusterKind): Target => {
    const kubeconfig =
      name === 'direct' ? directKubeconfigs[kind] : name === 'gateway' ? tunnel.gatewayKubeconfig(CLUSTER_NAMES[kind]) : (proxyKubeconfigs.get(kind) ?? '');
    const server =
      name === 'direct'
        ? cluster.url
        : name === 'gateway'
          ? `${tunnel.gatewayUrl}/k8s/clusters/${CLUSTER_NAMES[kind]}`
          : (tunnel.proxies.get(CLUSTER_NAMES[kind])?.url ?? '');
    let kc: KubeConfig | undefined;
    const bearer = name === 'direct' ? agentTokens[kind] : name === 'gateway' ? tunnel.runnerToken : undefined;
    const ca = name === 'direct' ? cluster.caData : name === 'gateway' ? readFileSync(tunnel.caFile, 'utf8') : undefined;
    const send = (path: string, o: { method?: string; headers?: Record<string, string>; body?: string | Buffer }) =>
      new Promise<{ res: IncomingMessage; abort(): void }>((resolve, reject) => {
        const url = new URL(`${server}${path}`);
        const headers: OutgoingHttpHeaders = { ...(o.headers ?? {}) };
        if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
        if (name === 'direct' && kind === 'as-runner') {
          headers['impersonate-user'] = runnerImpersonation.user;
          headers['impersonate-group'] = runnerImpersonation.groups;
        }
        const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
          url,
          { method: o.method ?? 'GET', headers, ...(ca !== undefined ? { ca } : {}) },
          (res) => resolve({ res, abort: () => req.destroy() }),
        );
        req.on('error', reject);
        req.end(o.body);
      });
    return {
      name,
      cluster: kind,
      kubeconfig,
      server,
      kubectl: (args, o = {}) =>
        runCommand(o.bin ?? bins.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], {
          home,
          timeoutMs: o.timeoutMs ?? 60_000,
          ...(o.stdin !== undefined ? { stdin: o.stdin } : {}),
          ...(o.env ? { env: o.env } : {}),
          ...(o.cwd ? { cwd: o.cwd } : {}),
        }),
      helm: (args, o = {}) =>
        runCommand(bins.helm, [`--kubeconfig=${kubeconfig}`, ...args], {
          home,
          timeoutMs: o.timeoutMs ?? 120_000,
          ...(o.env ? { env: o.env } : {}),
          ...(o.cwd ? { cwd: o.cwd } : {}),
        }),
      spawnKubectl: (label, args, o = {}) =>
        start(`${label}-${name}`, o.bin ?? bins.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], {
          logDir,
          env: cleanEnv(home, o.env),
          ...(o.stdinPipe === true ? { stdin: 'pipe' as const } : {}),
        }),
      async clientKubeConfig() {
        if (kc !== undefined) return kc;
        if (name === 'gateway') {
          const t = await connect({
            gatewayUrl: tunnel.gatewayUrl,
            token: tunnel.runnerToken,
            cluster: CLUSTER_NAMES[kind],
            ca: readFileSync(tunnel.caFile, 'utf8'),
          });
          clientTunnels.push(t);
          kc = t.kubeConfig();
        } else if (name === 'proxy') {
          // client-node 2.x refuses an http:// server unless skipTLSVerify is set ("HTTP protocol is
          // not allowed when skipTLSVerify is not set or false"): the proxy is plain HTTP on loopback
          kc = new KubeConfig();
          kc.loadFromOptions({
            clusters: [{ name: 'proxy', server, skipTLSVerify: true }],
            users: [{ name: 'proxy' }],
            contexts: [{ name: 'proxy', cluster: 'proxy', user: 'proxy' }],
            currentContext: 'proxy',
          });
        } else {
          kc = new KubeConfig();
          kc.loadFromFile(kubeconfig);
        }
        return kc;
      },
      async http(path, o = {}) {
        const { res } = await send(path, o);
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
      },
      async httpStream(path, o = {}) {
        const { res, abort } = await send(path, o);
        res.on('error', () => {});
        return { status: res.statusCode ?? 0, headers: res.headers, body: res, abort };
      },
    };
  };
  const target = (name: TargetName, kind: ClusterKind = 'full') => {
    const key = `${name}/${kind}`;
    let t = targets.get(key);
    if (t === undefined) {
      t = makeTarget(name, kind);
      targets.set(key, t);
    }
    return t;
  };

  return {
    bins,
    cluster,
    tunnel,
    runDir,
    logDir,
    home,
    kubectlMinor,
    ...(systemKubectlMinor !== undefined ? { systemKubectlMinor } : {}),
    target,
    namespace,
    pod,
    clientTunnels,
    async close() {
      for (const t of clientTunnels.splice(0)) await t.close().catch(() => {});
      await tunnel.close().catch(() => {});
      await cluster.close().catch(() => {});
      await stopAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
