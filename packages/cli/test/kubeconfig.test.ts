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

test('kubeconfig prints the path form for a cluster name that is not a DNS label, says why on stderr, and embeds token and CA', async (t) => {
  const dir = tempDir(t);
  const ca = writeFile(dir, 'ca.pem', CA);
  const r = await runCli(['kubeconfig', '--gateway', 'https://gw.example:8443/', '--token', 'rt-123', '--cluster', 'prod eu', '--ca', ca]);
  assert.equal(r.code, 0, r.stderr);
  const kc = parse(r.stdout) as Kubeconfig;
  assert.equal(kc['current-context'], 'pipeops-prod eu');
  assert.equal(kc.clusters[0]?.cluster.server, 'https://gw.example:8443/k8s/clusters/prod%20eu');
  assert.equal(kc.clusters[0]?.cluster['tls-server-name'], undefined);
  assert.match(r.stderr, /uses the path form .*: the cluster name "prod eu" is not a DNS label/);
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
  assert.equal(kc.clusters[0]?.cluster.server, 'https://127.0.0.1:9443');
  assert.equal(kc.clusters[0]?.cluster['tls-server-name'], 'c1.clusters.localhost');
});

test('kubeconfig writes the cluster address by default, the suffix from --cluster-address-suffix or PIPEOPS_CLUSTER_ADDRESS_SUFFIX', async () => {
  const server = async (args: string[], env: Record<string, string> = {}) => {
    const r = await runCli(
      ['kubeconfig', '--gateway', 'https://gw.example:8443/', '--cluster', 'prod-eu', ...args],
      cleanEnv({ PIPEOPS_RUNNER_TOKEN: 't', ...env }),
    );
    assert.equal(r.code, 0, r.stderr);
    const c = (parse(r.stdout) as Kubeconfig).clusters[0]?.cluster ?? {};
    return { server: c.server, name: c['tls-server-name'], stderr: r.stderr };
  };
  assert.deepEqual(await server([]), { server: 'https://gw.example:8443', name: 'prod-eu.clusters.localhost', stderr: '' });
  assert.deepEqual(await server(['--cluster-address-suffix', 'k8s.example.com']), {
    server: 'https://gw.example:8443',
    name: 'prod-eu.k8s.example.com',
    stderr: '',
  });
  assert.deepEqual(await server([], { PIPEOPS_CLUSTER_ADDRESS_SUFFIX: 'c.example.org' }), {
    server: 'https://gw.example:8443',
    name: 'prod-eu.c.example.org',
    stderr: '',
  });
  assert.deepEqual(await server(['--address', 'path']), { server: 'https://gw.example:8443/k8s/clusters/prod-eu', name: undefined, stderr: '' });
  const plain = await runCli(['kubeconfig', '--gateway', 'http://127.0.0.1:8080', '--cluster', 'c1'], cleanEnv({ PIPEOPS_RUNNER_TOKEN: 't' }));
  assert.equal((parse(plain.stdout) as Kubeconfig).clusters[0]?.cluster.server, 'http://127.0.0.1:8080/k8s/clusters/c1');
  assert.match(plain.stderr, /the gateway URL is http:\/\//);
});

test('kubeconfig --address sni where no address exists, an unknown --address or a bad suffix exits 2 naming the flag', async () => {
  const base = ['kubeconfig', '--gateway', 'https://gw.example:8443', '--token', 't'];
  const noLabel = await runCli([...base, '--cluster', 'Prod_EU', '--address', 'sni']);
  assert.equal(noLabel.code, 2);
  assert.match(noLabel.stderr, /--address sni cannot be used: the cluster name "Prod_EU" is not a DNS label/);
  assert.equal(noLabel.stdout, '');
  const unknown = await runCli([...base, '--cluster', 'c1', '--address', 'host']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--address must be sni or path, got host/);
  const badSuffix = await runCli([...base, '--cluster', 'c1', '--cluster-address-suffix', 'localhost']);
  assert.equal(badSuffix.code, 2);
  assert.match(badSuffix.stderr, /--cluster-address-suffix must be a lower-case DNS name of at least two labels/);
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
