import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { kubeconfigFlags } from '../src/commands/kubeconfig.ts';
import { cleanEnv, runCli, tempDir, writeFile } from './helpers.ts';

const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';

interface Kubeconfig {
  clusters: Array<{ name: string; cluster: Record<string, unknown> }>;
  users: Array<{ name: string; user: { token: string } }>;
  contexts: Array<{ name: string; context: { cluster: string; user: string } }>;
  'current-context': string;
}

test('kubeconfig prints a config whose server is the gateway endpoint of the cluster, with token and CA embedded', async (t) => {
  const dir = tempDir(t);
  const ca = writeFile(dir, 'ca.pem', CA);
  const r = await runCli(['kubeconfig', '--gateway', 'https://gw.example:8443/', '--token', 'rt-123', '--cluster', 'prod eu', '--ca', ca]);
  assert.equal(r.code, 0, r.stderr);
  const kc = parse(r.stdout) as Kubeconfig;
  assert.equal(kc['current-context'], 'pipeops-prod eu');
  assert.equal(kc.clusters[0]?.cluster.server, 'https://gw.example:8443/k8s/clusters/prod%20eu');
  assert.equal(Buffer.from(String(kc.clusters[0]?.cluster['certificate-authority-data']), 'base64').toString(), CA);
  assert.equal(kc.clusters[0]?.cluster['insecure-skip-tls-verify'], undefined);
  assert.deepEqual(kc.users, [{ name: 'pipeops-prod eu', user: { token: 'rt-123' } }]);
  assert.deepEqual(kc.contexts, [{ name: 'pipeops-prod eu', context: { cluster: 'pipeops-prod eu', user: 'pipeops-prod eu' } }]);
});

test('kubeconfig takes the token from PIPEOPS_RUNNER_TOKEN and honours --name and --insecure-skip-verify', async () => {
  const r = await runCli(
    ['kubeconfig', '--gateway', 'https://127.0.0.1:9443', '--cluster', 'c1', '--name', 'dev', '--insecure-skip-verify'],
    cleanEnv({ PIPEOPS_RUNNER_TOKEN: 'env-tkn' }),
  );
  assert.equal(r.code, 0, r.stderr);
  const kc = parse(r.stdout) as Kubeconfig;
  assert.equal(kc.users[0]?.user.token, 'env-tkn');
  assert.equal(kc.clusters[0]?.name, 'dev');
  assert.equal(kc.clusters[0]?.cluster['insecure-skip-tls-verify'], true);
  assert.equal(kc.clusters[0]?.cluster.server, 'https://127.0.0.1:9443/k8s/clusters/c1');
});

test('kubeconfig without a token, with a bad URL or an unreadable CA exits 2 naming the flag', async () => {
  const noToken = await runCli(['kubeconfig', '--gateway', 'https://gw', '--cluster', 'c1']);
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /--token is required/);
  const badUrl = await runCli(['kubeconfig', '--gateway', 'gw:8443', '--cluster', 'c1', '--token', 't']);
  assert.equal(badUrl.code, 2);
  assert.match(badUrl.stderr, /--gateway/);
  const badCa = await runCli(['kubeconfig', '--gateway', 'https://gw', '--cluster', 'c1', '--token', 't', '--ca', '/nonexistent/ca.pem']);
  assert.equal(badCa.code, 2);
  assert.match(badCa.stderr, /--ca: cannot read/);
  assert.equal(badCa.stdout, '');
});

test('kubeconfig --help mentions every flag', async () => {
  const r = await runCli(['kubeconfig', '--help']);
  assert.equal(r.code, 0);
  for (const flag of Object.keys(kubeconfigFlags)) assert.match(r.stdout, new RegExp(`--${flag}\\b`));
});
