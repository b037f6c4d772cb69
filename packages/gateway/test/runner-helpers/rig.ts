import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { Agent as UndiciAgent, request } from 'undici';
import { createAgent, type Agent } from '@pipeops/tunnel-agent';
import { collectLogs, kubeconfigFor, startFakeApiServer, type FakeApiServer, type LogCollector } from '@pipeops/tunnel-testkit';
import type { GatewayOptions } from '../../src/index.ts';
import { T, startGateway, type TestGateway } from '../helpers/gateway.ts';

/** A real gateway (TLS, 127.0.0.1:0), the real agent for cluster c1 behind it, and the testkit's fake API server behind the agent. */
export interface RunnerRig {
  gw: TestGateway;
  fake: FakeApiServer;
  agent: Agent;
  agentLogs: LogCollector;
  /** A temporary directory removed after the test. */
  dir: string;
  /** The gateway CA, written to a file (for kubeconfigs). */
  caFile: string;
  /** undici dispatcher trusting the gateway CA. */
  dispatcher: UndiciAgent;
  /** `https://127.0.0.1:<port>/k8s/clusters/<cluster>` */
  clusterUrl(cluster?: string): string;
  /** undici `request` to the gateway, with the gateway CA. */
  get(path: string, opts?: { token?: string | undefined; method?: string; headers?: Record<string, string> }): ReturnType<typeof request>;
}

/** Starts gateway + agent + fake API server; everything is closed by t.after(). */
export async function startRunnerRig(t: TestContext, gatewayOverrides: Partial<GatewayOptions> = {}): Promise<RunnerRig> {
  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  const dir = mkdtempSync(join(tmpdir(), 'gw-runner-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const gw = await startGateway(t, gatewayOverrides);
  const caFile = join(dir, 'gateway-ca.pem');
  writeFileSync(caFile, gw.ca);
  const kubeconfig = join(dir, 'agent-kubeconfig');
  writeFileSync(kubeconfig, kubeconfigFor({ server: fake.url, token: fake.token, caData: fake.caCert }));
  const agentLogs = collectLogs();
  const agent = createAgent({
    apiUrl: gw.httpsUrl, token: T.agentC1, agentId: 'agent-c1', name: 'agent c1', clusterName: 'c1', labels: {}, version: '0.0.0-test',
    pollIntervalMs: 30_000, timeoutMs: 5_000, port: 0, listenHost: '127.0.0.1',
    tls: { insecureSkipVerify: false, caFile }, allowInsecureTransport: false,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 100, maxIntervalMs: 1_000 },
    kubernetes: { kubeconfig, inCluster: false, namespace: 'default' },
  }, { logger: agentLogs.logger('info'), registry: new Registry() });
  const connected = once(gw.gateway, 'agent-connected');
  await agent.start();
  t.after(() => agent.close(1_000));
  await connected;
  const dispatcher = new UndiciAgent({ connect: { ca: gw.ca } });
  t.after(() => dispatcher.close());
  const clusterUrl = (cluster = 'c1'): string => `${gw.httpsUrl}/k8s/clusters/${cluster}`;
  return {
    gw, fake, agent, agentLogs, dir, caFile, dispatcher, clusterUrl,
    get: (path, opts = {}) => request(`${gw.httpsUrl}${path}`, {
      dispatcher,
      method: (opts.method ?? 'GET') as 'GET',
      headers: { ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }), ...opts.headers },
    }),
  };
}

/** The exact Status object the gateway answers with. */
export function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}
