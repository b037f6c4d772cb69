// The Kubernetes path assembled from real parts: the fake API server as the
// cluster's API server, the real agent whose kubeconfig points at it (the
// fake's CA and token: the agent's credential), the real gateway over TLS,
// and an undici dispatcher for the runner trusting the gateway's CA.
//
// The agent factory is injected: the agent's tests depend on this package,
// so this package cannot depend on the agent (no project-reference cycle).
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { Agent as UndiciAgent } from 'undici';
import { createGateway, type Gateway, type GatewayOptions, type TokensConfig } from '@pipeops/tunnel-gateway';
import { testCertificates, writeCaFile } from './certificates.ts';
import { collectLogs, type LogCollector } from './collect-logs.ts';
import { startFakeApiServer, type FakeApiServer } from './fake-apiserver.ts';
import { kubeconfigFor } from './kubectl.ts';
import { waitFor } from './wait-for.ts';

/** The agent's token, the runner's token and the cluster of the default setup. */
export const KUBE_PATH = {
  agentToken: 'kube-path-agent-token-0123456789abcdef',
  runnerToken: 'kube-path-runner-token-0123456789abcdef',
  cluster: 'c1',
} as const;

/** The agent options this helper builds (a structural slice of the agent's `AgentOptions`). */
export interface KubePathAgentOptions {
  apiUrl: string;
  token: string;
  agentId: string;
  name: string;
  clusterName: string;
  labels: Record<string, string>;
  version: string;
  pollIntervalMs: number;
  timeoutMs: number;
  port: number;
  listenHost: string;
  tls: { insecureSkipVerify: boolean; caFile: string };
  allowInsecureTransport: boolean;
  reconnect: { enabled: boolean; maxAttempts: number; intervalMs: number; maxIntervalMs: number };
  kubernetes: { kubeconfig: string; inCluster: boolean; namespace: string };
}

/**
 * Agent options for a test: a real agent on 127.0.0.1 (health port 0),
 * trusting `caFile`, dialing `apiUrl` with `token`, reconnecting quickly (100
 * ms, at most 1 s unless `reconnect` says otherwise), with a kubeconfig or
 * none. Everything else takes the value every test uses.
 */
export function testAgentOptions(o: {
  apiUrl: string;
  token: string;
  caFile: string;
  kubeconfig?: string;
  agentId?: string;
  name?: string;
  clusterName?: string;
  reconnect?: Partial<KubePathAgentOptions['reconnect']>;
}): KubePathAgentOptions {
  return {
    apiUrl: o.apiUrl,
    token: o.token,
    agentId: o.agentId ?? 'a1',
    name: o.name ?? 'test agent',
    clusterName: o.clusterName ?? KUBE_PATH.cluster,
    labels: {},
    version: '0.0.0-test',
    pollIntervalMs: 60_000,
    timeoutMs: 5_000,
    port: 0,
    listenHost: '127.0.0.1',
    tls: { insecureSkipVerify: false, caFile: o.caFile },
    allowInsecureTransport: false,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 100, maxIntervalMs: 1_000, ...o.reconnect },
    kubernetes: { kubeconfig: o.kubeconfig ?? '', inCluster: false, namespace: 'default' },
  };
}

/** What this helper needs of an agent. */
export interface KubePathAgent {
  start(): Promise<void>;
  close(deadlineMs?: number): Promise<void>;
  readiness(): { ready: boolean };
}

/** Options of {@link startKubePath}. */
export interface KubePathOptions<A extends KubePathAgent> {
  /** The agent's `createAgent` (injected, see the file comment). */
  createAgent(options: KubePathAgentOptions, deps: { logger: Logger; registry: Registry }): A;
  /** Merged over the defaults (TLS on 127.0.0.1:0, tokens for {@link KUBE_PATH}, `drainTimeoutMs` 1 000, `handshakeTimeoutMs` 5 000). */
  gateway?: Partial<GatewayOptions>;
  /** The agent's token; must match `gateway.tokens` when those are given. Default {@link KUBE_PATH}`.agentToken`. */
  agentToken?: string;
  /** Agent reconnect backoff, ms. Default `{ intervalMs: 100, maxIntervalMs: 1_000 }`. */
  reconnect?: { intervalMs: number; maxIntervalMs: number };
  /** Grace given to the gateway and the agent when closed, ms. Default `500`. */
  closeGraceMs?: number;
  /** Merged over the agent options built here (`kubernetes` merged key by key): `policy`, `audit`, `kubernetes.accessAs`… */
  agent?: { kubernetes?: Record<string, unknown>; [key: string]: unknown };
}

/** A running path; everything is closed in `t.after`. */
export interface KubePath<A extends KubePathAgent> {
  fake: FakeApiServer;
  agent: A;
  /** The current gateway (a new one after {@link startGateway}). */
  readonly gateway: Gateway;
  readonly gatewayAddress: AddressInfo;
  readonly gatewayPort: number;
  /** `https://127.0.0.1:<port>` */
  readonly gatewayUrl: string;
  /** The gateway's CA, PEM, and a file holding it. */
  gatewayCa: string;
  gatewayCaFile: string;
  gatewayRegistry: Registry;
  gatewayLogs: LogCollector;
  agentLogs: LogCollector;
  agentRegistry: Registry;
  /** Trusts the gateway's CA. */
  dispatcher: UndiciAgent;
  /** A temporary directory removed after the test. */
  dir: string;
  /** Every token of the setup (gateway tokens, the fake's token): none may appear in any log line. */
  secrets: string[];
  /** `https://127.0.0.1:<port>/k8s/clusters/<cluster>`; default cluster {@link KUBE_PATH}`.cluster`. */
  clusterUrl(cluster?: string): string;
  /** Stops the gateway (like a crash or a redeploy). */
  stopGateway(): Promise<void>;
  /** Starts a new gateway on the same port. */
  startGateway(): Promise<void>;
}

/** Starts fake API server, gateway and agent; resolves when the agent is connected and ready (its API server answered). */
export async function startKubePath<A extends KubePathAgent>(t: TestContext, opts: KubePathOptions<A>): Promise<KubePath<A>> {
  const { cluster } = KUBE_PATH;
  const agentToken = opts.agentToken ?? KUBE_PATH.agentToken;
  const closeGraceMs = opts.closeGraceMs ?? 500;
  const dir = mkdtempSync(join(tmpdir(), 'pipeops-kube-path-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certs = testCertificates();
  const gatewayCaFile = writeCaFile(dir, certs, 'gateway-ca.pem');
  const fake = await startFakeApiServer();
  t.after(() => fake.close());

  const tokens: TokensConfig = opts.gateway?.tokens ?? {
    agents: [{ cluster, token: agentToken }],
    runners: [{ id: 'r1', token: KUBE_PATH.runnerToken, clusters: [cluster] }],
    admins: [],
  };
  const gatewayLogs = collectLogs();
  const gatewayRegistry = new Registry();
  let gateway: Gateway | undefined;
  let address: AddressInfo = { address: '127.0.0.1', family: 'IPv4', port: 0 };
  const launchGateway = async (): Promise<Gateway> => {
    const options: GatewayOptions = {
      host: '127.0.0.1',
      tls: { cert: certs.cert, key: certs.key },
      tokens,
      drainTimeoutMs: 1_000,
      handshakeTimeoutMs: 5_000,
      ...opts.gateway,
      port: address.port,
    };
    gatewayRegistry.clear(); // a restarted gateway registers its metrics afresh
    const started = createGateway(options, { logger: gatewayLogs.logger('debug'), registry: gatewayRegistry });
    address = await started.start();
    gateway = started;
    return started;
  };
  const stopGateway = async (): Promise<void> => {
    await gateway?.close(closeGraceMs);
    gateway = undefined;
  };
  const first = await launchGateway();
  t.after(stopGateway);
  const { port } = address;

  const kubeconfig = join(dir, 'agent-kubeconfig.yaml');
  writeFileSync(kubeconfig, kubeconfigFor({ server: fake.url, token: fake.token, caData: fake.caCert, namespace: 'default' }), { mode: 0o600 });
  const agentLogs = collectLogs();
  const agentRegistry = new Registry();
  const agent = opts.createAgent(
    {
      ...testAgentOptions({
        apiUrl: `https://127.0.0.1:${port}`,
        token: agentToken,
        caFile: gatewayCaFile,
        clusterName: cluster,
        name: 'kube path',
        ...(opts.reconnect !== undefined ? { reconnect: opts.reconnect } : {}),
      }),
      ...opts.agent,
      kubernetes: { kubeconfig, inCluster: false, namespace: 'default', ...opts.agent?.kubernetes },
    } as KubePathAgentOptions,
    { logger: agentLogs.logger('debug'), registry: agentRegistry },
  );
  t.after(() => agent.close(closeGraceMs));
  const connected = once(first, 'agent-connected');
  await agent.start();
  await connected;
  await waitFor(() => agent.readiness().ready, { timeoutMs: 10_000, what: 'the agent to be ready (tunnel up, API server reached)' });

  const dispatcher = new UndiciAgent({ connect: { ca: certs.caCert }, keepAliveTimeout: 1_000 });
  t.after(() => dispatcher.destroy());
  const secrets = [...(tokens.agents ?? []), ...(tokens.runners ?? []), ...(tokens.admins ?? [])].flatMap((entry) => entry.token ?? []).concat(fake.token);
  return {
    fake,
    agent,
    gatewayCa: certs.caCert,
    gatewayCaFile,
    gatewayRegistry,
    gatewayLogs,
    agentLogs,
    agentRegistry,
    dispatcher,
    dir,
    secrets,
    stopGateway,
    startGateway: async () => {
      await launchGateway();
    },
    get gateway() {
      if (gateway === undefined) throw new Error('the gateway is stopped');
      return gateway;
    },
    get gatewayAddress() {
      return address;
    },
    get gatewayPort() {
      return port;
    },
    get gatewayUrl() {
      return `https://127.0.0.1:${port}`;
    },
    clusterUrl: (name = cluster) => `https://127.0.0.1:${port}/k8s/clusters/${name}`,
  };
}
