// The real Kubernetes path for end-to-end tests (the testkit's startKubePath:
// fake API server, real agent, real gateway over TLS), with a quick agent
// reconnect for the gateway restart tests. The runner side is what the tests
// exercise.
import type { TestContext } from 'node:test';
import { createAgent, type Agent } from '@pipeops/tunnel-agent';
import { KUBE_PATH, startKubePath, type KubePath } from '@pipeops/tunnel-testkit';

export const AGENT_TOKEN = KUBE_PATH.agentToken;
export const RUNNER_TOKEN = KUBE_PATH.runnerToken;
export const CLUSTER = KUBE_PATH.cluster;

export type RealPath = KubePath<Agent>;

export function startRealPath(t: TestContext): Promise<RealPath> {
  return startKubePath(t, {
    createAgent,
    gateway: { drainTimeoutMs: 500 },
    reconnect: { intervalMs: 50, maxIntervalMs: 200 },
    closeGraceMs: 200,
  });
}
