// Two agents for one cluster (an agent Deployment rolling, with the new pod
// up before the old one goes; or a second install by mistake): the newer one
// takes the cluster, the one it replaced stands by — refused with 409 while
// the newer one is connected, not fighting back — and takes over once the
// newer one leaves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { KUBE_PATH, collectLogs, startKubePath, testAgentOptions, waitFor } from '@pipeops/tunnel-testkit';
import { createAgent, type Agent } from '../src/index.ts';

test('a second agent for a cluster replaces the first, which stands by without taking the cluster back, and takes over when the second leaves', async (t) => {
  const path = await startKubePath(t, { createAgent, reconnect: { intervalMs: 50, maxIntervalMs: 200 } });
  const takeovers: string[] = [];
  path.gateway.on('agent-connected', () => takeovers.push(path.gateway.clusters()[0]?.agentId ?? '?'));
  const logs = collectLogs();
  const second: Agent = createAgent(
    testAgentOptions({
      apiUrl: path.gatewayUrl,
      token: KUBE_PATH.agentToken,
      caFile: path.gatewayCaFile,
      kubeconfig: `${path.dir}/agent-kubeconfig.yaml`,
      agentId: 'a2',
      name: 'second',
      clusterName: KUBE_PATH.cluster,
      reconnect: { intervalMs: 50, maxIntervalMs: 200 },
    }),
    { logger: logs.logger('debug'), registry: new Registry() },
  );
  t.after(() => second.close(200));
  await second.start();

  // The first agent dials again and again (every 50–200 ms) and is refused each time, while a2 keeps the cluster.
  const refusals = (): number => path.gatewayLogs.records.filter((r) => r.event === 'agent_refused' && r.code === 'PT_ERR_CLUSTER_HELD').length;
  await waitFor(() => refusals() >= 5, { what: 'five dials of the replaced agent refused', timeoutMs: 20_000 });
  assert.deepEqual(takeovers, ['a2'], 'a2 took the cluster once, and nobody took it back');
  assert.equal(path.gateway.clusters()[0]?.agentId, 'a2');
  assert.equal(second.state, 'connected');
  assert.notEqual(path.agent.readiness().ready, true, 'the replaced agent is not ready while it stands by');
  assert.ok(
    path.agentLogs.records.some((r) => r.event === 'tunnel_replaced'),
    'the replaced agent says why it stands by',
  );

  // a2 goes: the first agent takes the cluster at its next dial.
  await second.close(200);
  await waitFor(() => path.gateway.clusters()[0]?.agentId === 'a1', { what: 'a1 to take the cluster back', timeoutMs: 10_000 });
  assert.deepEqual(takeovers, ['a2', 'a1']);
});
