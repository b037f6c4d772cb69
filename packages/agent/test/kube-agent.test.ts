import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { FAKE_GIT_VERSION, kubeconfigFor, startFakeApiServer, waitFor } from '@pipeops/tunnel-testkit';
import type { StatusMessage } from '@pipeops/tunnel-protocol';
import { nextConnected, startAgent } from './helpers/agent.ts';
import { testCerts } from './helpers/certs.ts';
import { startFakeGateway } from './helpers/fake-gateway.ts';
import { readAll, tempDir, writeIn } from './helpers/kube-harness.ts';

async function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${String(port)}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('the agent serves http streams, reports the API server version, and /ready follows the API server', async (t) => {
  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  const certs = testCerts();
  const gw = await startFakeGateway({ token: 'agent-secret-token-0123456789', tls: { cert: certs.cert, key: certs.key } });
  t.after(() => gw.close());
  const dir = tempDir(t);
  const kubeconfig = writeIn(dir, 'kubeconfig', kubeconfigFor({ server: fake.url, token: fake.token, caData: fake.caCert }));
  const caFile = writeIn(dir, 'gateway-ca.pem', certs.caCert);
  const { agent } = await startAgent(t, {
    apiUrl: gw.url,
    tls: { insecureSkipVerify: false, caFile },
    pollIntervalMs: 100,
    kubernetes: { kubeconfig, inCluster: false, namespace: 'default', apiHealthIntervalMs: 100 },
  });
  await nextConnected(agent);
  const port = agent.healthAddress?.port ?? 0;
  await waitFor(async () => (await getJson(port, '/ready')).status === 200, { timeoutMs: 5_000 });
  const report = await waitFor(() => gw.messages.find((m): m is StatusMessage => m.type === 'status' && m.apiServer?.version === FAKE_GIT_VERSION));
  assert.equal(report.apiServer?.reachable, true);

  const stream = gw.openStream({ kind: 'http', requestId: 'via-agent', runnerId: 'r1', cluster: 'c1' });
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    request({ createConnection: () => stream as never, path: '/api/v1/namespaces/default/pods' }, resolve)
      .on('error', reject)
      .end();
  });
  assert.equal(res.statusCode, 200);
  assert.equal((JSON.parse((await readAll(res)).toString()) as { kind: string }).kind, 'PodList');

  await fake.close();
  const notReady = await waitFor(
    async () => {
      const r = await getJson(port, '/ready');
      return r.status === 503 ? r : undefined;
    },
    { timeoutMs: 5_000 },
  );
  assert.match(String(notReady.body.reason), /^apiServer: /);
});
