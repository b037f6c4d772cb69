import type { AgentOptions } from '../../src/config.ts';

/** Valid options for tests; override what a test needs. */
export function testOptions(overrides: Partial<AgentOptions> = {}): AgentOptions {
  return {
    apiUrl: 'https://gateway.example.test',
    token: 'agent-secret-token-0123456789',
    agentId: 'agent-1',
    name: 'test agent',
    clusterName: 'c1',
    labels: { env: 'test' },
    version: '0.1.0-test',
    pollIntervalMs: 30_000,
    timeoutMs: 5_000,
    port: 0,
    listenHost: '127.0.0.1',
    tls: { insecureSkipVerify: false },
    allowInsecureTransport: false,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 100, maxIntervalMs: 1_000 },
    // Hermetic: no Kubernetes path unless a test configures one (a developer's ~/.kube/config must not leak in).
    kubernetes: { inCluster: false, namespace: 'default', enabled: false },
    ...overrides,
  };
}
