// The Kubernetes path assembled from real parts, for the k8s-*.test.ts files:
// the fake API server (tools/testkit) as the cluster's API server, the real
// agent whose kubeconfig points at it (the fake's CA and token: the agent's
// credential), the real gateway over TLS, and an undici dispatcher for the
// runner (trusting the gateway's CA, carrying a runner token). A canary
// server stands by for "nothing but the API server is ever dialled".
import type { TestContext } from 'node:test';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Agent as UndiciAgent } from 'undici';
import { createAgent, type Agent, type AgentOptions } from '@pipeops/tunnel-agent';
import { createGateway, type Gateway } from '@pipeops/tunnel-gateway';
import {
  collectLogs, kubeconfigFor, startCanaryServer, startFakeApiServer, testCertificates, waitFor, writeCaFile,
  type CanaryServer, type FakeApiServer, type LogCollector,
} from '@pipeops/tunnel-testkit';

export const AGENT_TOKEN = 'k8s-path-agent-token-0123456789abcdef';
export const RUNNER_TOKEN = 'k8s-path-runner-token-0123456789abcdef';
export const CLUSTER = 'c1';

export interface K8sPath {
  fake: FakeApiServer;
  canary: CanaryServer;
  gateway: Gateway;
  agent: Agent;
  gatewayPort: number;
  /** `https://127.0.0.1:<gw>/k8s/clusters/c1` */
  base: string;
  /** Trusts the gateway's CA. */
  dispatcher: UndiciAgent;
  /** `{ authorization: 'Bearer <runner token>' }` */
  auth: Record<string, string>;
  /** The gateway's CA, PEM, and a file holding it. */
  gatewayCa: string;
  gatewayCaFile: string;
  gatewayLogs: LogCollector;
  agentLogs: LogCollector;
  /** Every secret of the setup: none may appear in any log line. */
  secrets: string[];
}

/** Starts the whole path; everything is closed in `t.after`. */
export async function startK8sPath(t: TestContext, opts: { agentHeadTimeoutMs?: number } = {}): Promise<K8sPath> {
  const dir = mkdtempSync(join(tmpdir(), 'pipeops-k8s-path-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const gatewayCerts = testCertificates();
  const gatewayCaFile = writeCaFile(dir, gatewayCerts, 'gateway-ca.pem');

  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  const canary = await startCanaryServer();
  t.after(() => canary.close());

  const gatewayLogs = collectLogs();
  const gatewayOptions = {
    host: '127.0.0.1', port: 0, tls: { cert: gatewayCerts.cert, key: gatewayCerts.key },
    tokens: { agents: [{ cluster: CLUSTER, token: AGENT_TOKEN }], runners: [{ id: 'r1', token: RUNNER_TOKEN, clusters: [CLUSTER] }], admins: [] },
    drainTimeoutMs: 1_000, handshakeTimeoutMs: 5_000,
    ...(opts.agentHeadTimeoutMs === undefined ? {} : { agentHeadTimeoutMs: opts.agentHeadTimeoutMs }),
  };
  const gateway = createGateway(gatewayOptions, { logger: gatewayLogs.logger('debug'), registry: new Registry() });
  const { port: gatewayPort } = await gateway.start();
  t.after(() => gateway.close(500));

  const kubeconfigFile = join(dir, 'agent-kubeconfig.yaml');
  writeFileSync(kubeconfigFile, kubeconfigFor({ server: fake.url, token: fake.token, caData: fake.caCert, namespace: 'default' }), { mode: 0o600 });
  const agentLogs = collectLogs();
  const agentOptions: AgentOptions = {
    apiUrl: `https://127.0.0.1:${gatewayPort}`, token: AGENT_TOKEN, agentId: 'a1', name: 'k8s path', clusterName: CLUSTER,
    labels: {}, version: '0.0.0-test', pollIntervalMs: 60_000, timeoutMs: 5_000, port: 0, listenHost: '127.0.0.1',
    tls: { insecureSkipVerify: false, caFile: gatewayCaFile }, allowInsecureTransport: false,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 100, maxIntervalMs: 1_000 },
    kubernetes: { kubeconfig: kubeconfigFile, inCluster: false, namespace: 'default' },
  };
  const agent = createAgent(agentOptions, { logger: agentLogs.logger('debug'), registry: new Registry() });
  t.after(() => agent.close(500));
  const connected = once(gateway, 'agent-connected');
  await agent.start();
  await connected;
  // Ready = tunnel up and the API server answered (the agent's own health check).
  await waitFor(() => agent.readiness().ready, { timeoutMs: 10_000, what: 'the agent to be ready (tunnel up, API server reached)' });

  const dispatcher = new UndiciAgent({ connect: { ca: gatewayCerts.caCert }, keepAliveTimeout: 1_000 });
  t.after(() => dispatcher.destroy());
  return {
    fake, canary, gateway, agent, gatewayPort, dispatcher,
    base: `https://127.0.0.1:${gatewayPort}/k8s/clusters/${CLUSTER}`,
    auth: { authorization: `Bearer ${RUNNER_TOKEN}` },
    gatewayCa: gatewayCerts.caCert, gatewayCaFile, gatewayLogs, agentLogs,
    secrets: [AGENT_TOKEN, RUNNER_TOKEN, fake.token],
  };
}
