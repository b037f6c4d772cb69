// A request that lost its /k8s/clusters/{cluster} prefix (kubectl < 1.34 drops
// the kubeconfig server's path for `get --raw`) gets a Kubernetes Status 404
// that says what to type instead; other unknown paths keep the plain 404.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAKE_GIT_VERSION, kubeconfigFor, kubectl, kubectlClientVersion } from '@pipeops/tunnel-testkit';
import { T } from './helpers/gateway.ts';
import { startRunnerRig, status } from './runner-helpers/rig.ts';

const hint = (path: string): string =>
  'the gateway serves the Kubernetes API under /k8s/clusters/<cluster>, not at ' +
  path +
  '; "kubectl get --raw" through the gateway needs that prefix in the path (kubectl < 1.34 drops the server path for --raw): ' +
  `kubectl get --raw /k8s/clusters/<cluster>${path}` +
  ", or use the cluster's own address, which needs no prefix " +
  '(kubeconfig server https://<gateway> with tls-server-name <cluster>.clusters.localhost, as "pipeops-tunnel kubeconfig" writes it)';

test('an API path without the cluster prefix gets a NotFound Status naming the /k8s/clusters/<cluster> prefix', async (t) => {
  const rig = await startRunnerRig(t);
  for (const path of ['/version', '/api', '/apis/apps/v1', '/openapi/v2']) {
    const res = await rig.get(`${path}?timeout=32s`, { token: T.runnerC1 });
    assert.equal(res.statusCode, 404, path);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.ok(typeof res.headers['x-pipeops-request-id'] === 'string', `${path} carries a request id`);
    assert.deepEqual(await res.body.json(), status(404, 'NotFound', hint(path)));
  }
  // Not an API path: the gateway's own 404, unchanged.
  const other = await rig.get('/no-such-thing');
  assert.equal(other.statusCode, 404);
  assert.deepEqual(await other.body.json(), { error: { code: 'PT_ERR_NOT_FOUND', message: 'no route for GET /no-such-thing' } });
  assert.equal(rig.fake.requests.filter((r) => r.path.startsWith('/apis') || r.path.startsWith('/openapi')).length, 0, 'nothing was relayed');
});

test('kubectl get --raw /version through the gateway prints the prefix hint, and the prefixed path works', async (t) => {
  const rig = await startRunnerRig(t);
  const kubeconfig = kubeconfigFor({ server: rig.clusterUrl('c1'), token: T.runnerC1, caFile: rig.gatewayCaFile });
  const { major, minor } = await kubectlClientVersion();
  const raw = await kubectl(['get', '--raw', '/version'], { kubeconfig });
  if (major === 1 && minor < 34) {
    // kubectl sent GET https://gateway/version: the Status message is what it prints.
    assert.equal(raw.code, 1, raw.stderr);
    assert.equal(raw.stdout, '');
    assert.equal(raw.stderr.trim(), `Error from server (NotFound): ${hint('/version')}`);
  } else {
    // kubectl ≥ 1.34 keeps the server path: the request reaches the API server.
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal((JSON.parse(raw.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  }
  const prefixed = await kubectl(['get', '--raw', '/k8s/clusters/c1/version'], { kubeconfig });
  if (major === 1 && minor < 34) {
    assert.equal(prefixed.code, 0, prefixed.stderr);
    assert.equal((JSON.parse(prefixed.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  } else {
    assert.notEqual(prefixed.code, 0, 'a doubled prefix is not an API path');
  }
});
