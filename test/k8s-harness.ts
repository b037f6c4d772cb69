// The Kubernetes path assembled from real parts, for the k8s-*.test.ts files:
// the testkit's startKubePath (fake API server, real agent, real gateway over
// TLS, an undici dispatcher for the runner) plus a canary server standing by
// for "nothing but the API server is ever dialled".
import type { TestContext } from 'node:test';
import { createAgent, type Agent } from '@pipeops/tunnel-agent';
import { KUBE_PATH, startCanaryServer, startKubePath, type CanaryServer, type KubePath } from '@pipeops/tunnel-testkit';

export const AGENT_TOKEN = KUBE_PATH.agentToken;
export const RUNNER_TOKEN = KUBE_PATH.runnerToken;
export const CLUSTER = KUBE_PATH.cluster;

export interface K8sPath extends KubePath<Agent> {
  canary: CanaryServer;
  /** `https://127.0.0.1:<gw>/k8s/clusters/c1` */
  base: string;
  /** `{ authorization: 'Bearer <runner token>' }` */
  auth: Record<string, string>;
}

/** Starts the whole path; everything is closed in `t.after`. */
export async function startK8sPath(t: TestContext, opts: { agentHeadTimeoutMs?: number } = {}): Promise<K8sPath> {
  const canary = await startCanaryServer();
  t.after(() => canary.close());
  const path = await startKubePath(t, {
    createAgent,
    ...(opts.agentHeadTimeoutMs === undefined ? {} : { gateway: { agentHeadTimeoutMs: opts.agentHeadTimeoutMs } }),
  });
  return Object.assign(path, { canary, base: path.clusterUrl(), auth: { authorization: `Bearer ${RUNNER_TOKEN}` } });
}
