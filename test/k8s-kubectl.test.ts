// Real kubectl (/usr/bin/kubectl) against the gateway's /k8s/clusters/c1
// endpoint, with a kubeconfig holding only the gateway's CA and a runner token.
// kubectl < 1.34 drops the server URL's path for `get --raw` (kubectl#1676):
// kubectlRawPath() adds /k8s/clusters/c1 by hand for those versions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAKE_GIT_VERSION, FAKE_POD_NAMES, kubeconfigFor, kubectl, kubectlRawPath } from '@pipeops/tunnel-testkit';
import { RUNNER_TOKEN, startK8sPath } from './k8s-harness.ts';

test('kubectl get --raw, version -o json and get pods work through the gateway endpoint', async (t) => {
  const p = await startK8sPath(t);
  const kubeconfig = kubeconfigFor({ server: p.base, token: RUNNER_TOKEN, caFile: p.gatewayCaFile, namespace: 'default' });

  const raw = await kubectl(['get', '--raw', await kubectlRawPath(p.base, '/version')], { kubeconfig });
  assert.equal(raw.code, 0, raw.stderr);
  assert.equal((JSON.parse(raw.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);

  const version = await kubectl(['version', '-o', 'json'], { kubeconfig });
  assert.equal(version.code, 0, version.stderr);
  const v = JSON.parse(version.stdout) as { serverVersion?: { gitVersion: string; major: string; minor: string } };
  assert.equal(v.serverVersion?.gitVersion, FAKE_GIT_VERSION);

  const pods = await kubectl(['get', '--raw', await kubectlRawPath(p.base, '/api/v1/namespaces/default/pods')], { kubeconfig });
  assert.equal(pods.code, 0, pods.stderr);
  assert.deepEqual(
    (JSON.parse(pods.stdout) as { items: Array<{ metadata: { name: string } }> }).items.map((i) => i.metadata.name),
    FAKE_POD_NAMES,
  );

  const names = await kubectl(['get', 'pods', '-o', 'name'], { kubeconfig });
  assert.equal(names.code, 0, names.stderr);
  assert.deepEqual(
    names.stdout.trim().split('\n'),
    FAKE_POD_NAMES.map((n) => `pod/${n}`),
  );
});

test("kubectl prints the gateway's Status error for a bad runner token like an API server error", async (t) => {
  const p = await startK8sPath(t);
  const kubeconfig = kubeconfigFor({ server: p.base, token: 'not-a-runner-token', caFile: p.gatewayCaFile });
  const raw = await kubectl(['get', '--raw', await kubectlRawPath(p.base, '/version')], { kubeconfig });
  assert.notEqual(raw.code, 0);
  // What kubectl prints for an API server's 401 Status: the Status message in parentheses.
  assert.match(raw.stderr, /You must be logged in to the server \(.*runner token.*\)/);
  const pods = await kubectl(['get', 'pods'], { kubeconfig });
  assert.notEqual(pods.code, 0);
  assert.match(pods.stderr, /You must be logged in to the server/);
  assert.equal(p.fake.requests.filter((r) => r.path === '/version' && !r.authorized).length, 0);
});
