// The real Kubernetes path for end-to-end tests: the testkit's fake API
// server as the cluster, the real agent (kubeconfig → the fake), the real
// gateway over TLS. The runner side is what the tests exercise.
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { createAgent, type Agent, type AgentOptions } from '@pipeops/tunnel-agent';
import { createGateway, type Gateway, type GatewayOptions } from '@pipeops/tunnel-gateway';
import { collectLogs, kubeconfigFor, startFakeApiServer, testCertificates, waitFor, writeCaFile, type FakeApiServer, type LogCollector } from '@pipeops/tunnel-testkit';

export const AGENT_TOKEN = 'tc-e2e-agent-token-0123456789abcdef';
export const RUNNER_TOKEN = 'tc-e2e-runner-token-0123456789abcdef';
export const CLUSTER = 'c1';

export interface RealPath {
  fake: FakeApiServer;
  agent: Agent;
  gatewayUrl: string;
  gatewayPort: number;
  gatewayCa: string;
  gatewayCaFile: string;
  gatewayLogs: LogCollector;
  /** Stops the gateway (like a crash or a redeploy). */
  stopGateway(): Promise<void>;
  /** Starts a new gateway on the same port. */
  startGateway(): Promise<void>;
}

export async function startRealPath(t: TestContext): Promise<RealPath> {
  const dir = mkdtempSync(join(tmpdir(), 'pt-client-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certs = testCertificates();
  const gatewayCaFile = writeCaFile(dir, certs, 'gateway-ca.pem');
  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  const gatewayLogs = collectLogs();
  let port = 0;
  let gateway: Gateway | undefined;
  const startGateway = async (): Promise<void> => {
    const options: GatewayOptions = {
      host: '127.0.0.1', port, tls: { cert: certs.cert, key: certs.key },
      tokens: { agents: [{ cluster: CLUSTER, token: AGENT_TOKEN }], runners: [{ id: 'r1', token: RUNNER_TOKEN, clusters: [CLUSTER] }], admins: [] },
      drainTimeoutMs: 500, handshakeTimeoutMs: 5_000,
    };
    gateway = createGateway(options, { logger: gatewayLogs.logger('debug'), registry: new Registry() });
    port = (await gateway.start()).port;
  };
  const stopGateway = async (): Promise<void> => {
    await gateway?.close(200);
    gateway = undefined;
  };
  await startGateway();
  t.after(stopGateway);

  const kubeconfigFile = join(dir, 'agent-kubeconfig.yaml');
  writeFileSync(kubeconfigFile, kubeconfigFor({ server: fake.url, token: fake.token, caData: fake.caCert, namespace: 'default' }), { mode: 0o600 });
  const agentOptions: AgentOptions = {
    apiUrl: `https://127.0.0.1:${port}`, token: AGENT_TOKEN, agentId: 'a1', name: 'client e2e', clusterName: CLUSTER,
    labels: {}, version: '0.0.0-test', pollIntervalMs: 60_000, timeoutMs: 5_000, port: 0, listenHost: '127.0.0.1',
    tls: { insecureSkipVerify: false, caFile: gatewayCaFile }, allowInsecureTransport: false,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 50, maxIntervalMs: 200 },
    kubernetes: { kubeconfig: kubeconfigFile, inCluster: false, namespace: 'default' },
  };
  const agent = createAgent(agentOptions, { logger: collectLogs().logger('warn'), registry: new Registry() });
  t.after(() => agent.close(300));
  const connected = once(gateway as unknown as NodeJS.EventEmitter, 'agent-connected');
  await agent.start();
  await connected;
  await waitFor(() => agent.readiness().ready, { timeoutMs: 10_000, what: 'the agent to be ready' });
  return {
    fake, agent, gatewayCa: certs.caCert, gatewayCaFile, gatewayLogs, stopGateway, startGateway,
    get gatewayPort() { return port; },
    get gatewayUrl() { return `https://127.0.0.1:${port}`; },
  };
}
