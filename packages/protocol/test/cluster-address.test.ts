import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressedCluster, clusterAddressSuffixProblem, clusterServerName, DEFAULT_CLUSTER_ADDRESS_SUFFIX } from '../src/index.ts';

const S = DEFAULT_CLUSTER_ADDRESS_SUFFIX;

test('a TLS server name <label>.<suffix> addresses that cluster, without regard to case', () => {
  assert.deepEqual(addressedCluster(`c1.${S}`, S), { ok: true, cluster: 'c1', serverName: `c1.${S}` });
  assert.deepEqual(addressedCluster('E2E-Policy.Clusters.LOCALHOST', S), { ok: true, cluster: 'e2e-policy', serverName: `e2e-policy.${S}` });
  assert.deepEqual(addressedCluster(`${'a'.repeat(63)}.${S}`, S), { ok: true, cluster: 'a'.repeat(63), serverName: `${'a'.repeat(63)}.${S}` });
  assert.deepEqual(addressedCluster('prod.k8s.example.com', 'k8s.example.com'), { ok: true, cluster: 'prod', serverName: 'prod.k8s.example.com' });
});

test('server names outside the suffix, no server name, the suffix itself, or an empty suffix address no cluster', () => {
  for (const name of [undefined, null, false as const, '', 'localhost', S, `x${S}`, `c1.${S}.evil.example`, 'gateway.example.com']) {
    assert.equal(addressedCluster(name, S), undefined, String(name));
  }
  assert.equal(addressedCluster(`c1.${S}`, ''), undefined);
});

test('a server name under the suffix whose first part is not one DNS label is reported, not ignored', () => {
  for (const first of ['a.b', 'under_score', '-lead', 'trail-', 'a'.repeat(64), 'sp ace']) {
    const got = addressedCluster(`${first}.${S}`, S);
    assert.equal(got?.ok, false, first);
    assert.match(got?.ok === false ? got.message : '', /names no cluster: a cluster address is <cluster>\.clusters\.localhost with one DNS label/, first);
  }
});

test('only lower-case DNS-label cluster names have an address; an empty suffix turns addresses off', () => {
  assert.equal(clusterServerName('e2e-readonly', S), `e2e-readonly.${S}`);
  for (const name of ['Prod', 'prod.eu', 'prod_eu', 'prod eu', 'a'.repeat(64), '-x']) assert.equal(clusterServerName(name, S), undefined, name);
  assert.equal(clusterServerName('c1', ''), undefined);
});

test('a suffix is a lower-case DNS name of at least two labels, or empty', () => {
  for (const ok of ['', S, 'clusters.gateway.example.com', 'k8s.example']) assert.equal(clusterAddressSuffixProblem(ok), undefined, ok);
  for (const bad of ['localhost', '.clusters.localhost', 'clusters.localhost.', 'Clusters.localhost', 'a..b', '*.example.com', `${'a.'.repeat(95)}com`]) {
    assert.match(clusterAddressSuffixProblem(bad) ?? '', /must be/, bad);
  }
});
