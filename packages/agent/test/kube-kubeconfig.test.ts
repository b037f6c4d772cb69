import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { NOT_CONFIGURED, loadKubeCredentials } from '../src/kube/credentials.ts';
import type { KubeCredentials } from '../src/kube/credentials.ts';
import { setEnv, tempDir, writeIn } from './helpers/kube-harness.ts';

const SECRET = 'sekret-token-0123456789';

/** A kubeconfig document with one context `ctx` → cluster `c`, user `u`. */
function doc(cluster: Record<string, unknown>, user: Record<string, unknown> | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'ctx',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', ...cluster } }],
    users: user === undefined ? [] : [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: user === undefined ? { cluster: 'c' } : { cluster: 'c', user: 'u' } }],
    ...extra,
  };
}

function load(file: string, fileRecheckMs?: number): KubeCredentials {
  const creds = loadKubeCredentials({ kubeconfig: file, inCluster: false, ...(fileRecheckMs === undefined ? {} : { fileRecheckMs }) });
  assert.notEqual(creds, NOT_CONFIGURED);
  return creds as KubeCredentials;
}

/** Asserts `fn` throws PT_ERR_KUBE_CREDENTIALS with a message matching `re` and never containing {@link SECRET}. */
function assertRefused(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    const err = e as { code?: unknown; message: string };
    assert.equal(err.code, 'PT_ERR_KUBE_CREDENTIALS');
    assert.match(err.message, re);
    assert.ok(!err.message.includes(SECRET), `secret in message: ${err.message}`);
    return true;
  });
}

test('relative CA, client certificate, key and token file paths are read from the kubeconfig folder, not the working directory', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'pki'));
  writeIn(dir, 'pki/ca.crt', 'CA-PEM');
  writeIn(dir, 'pki/client.crt', 'CERT-PEM');
  writeIn(dir, 'pki/client.key', 'KEY-PEM');
  writeIn(dir, 'token', `${SECRET}\n`);
  const file = writeIn(
    dir,
    'config',
    stringify(doc({ 'certificate-authority': 'pki/ca.crt' }, { 'client-certificate': 'pki/client.crt', 'client-key': './pki/client.key', tokenFile: 'token' })),
  );
  const creds = load(file);
  const { headers, tls } = await creds.resolve();
  assert.equal(tls.ca?.toString(), 'CA-PEM');
  assert.equal(tls.cert?.toString(), 'CERT-PEM');
  assert.equal(tls.key?.toString(), 'KEY-PEM');
  assert.deepEqual(headers, { authorization: `Bearer ${SECRET}` });
  assert.equal(creds.tlsOptions.ca?.toString(), 'CA-PEM');
});

test('a token-file is re-read when it changes (checked on every request here), and a missing one fails the load naming the context', async (t) => {
  const dir = tempDir(t);
  writeIn(dir, 'token', 'first');
  const creds = load(writeIn(dir, 'config', stringify(doc({}, { 'token-file': join(dir, 'token') }))), 0);
  assert.deepEqual(await creds.authHeaders(), { authorization: 'Bearer first' });
  const unchanged = await creds.resolve();
  assert.equal(await creds.resolve(), unchanged, 'the same answer while the file is unchanged');
  writeIn(dir, 'token', 'second-and-longer');
  assert.deepEqual(await creds.authHeaders(), { authorization: 'Bearer second-and-longer' });
  assert.notEqual(await creds.resolve(), unchanged);
  assertRefused(() => load(writeIn(dir, 'bad', stringify(doc({}, { tokenFile: 'missing-token' })))), /context "ctx".*missing-token/);
});

test('insecure-skip-tls-verify, tls-server-name and inline CA data become the TLS options', async (t) => {
  const file = writeIn(
    tempDir(t),
    'config',
    stringify(
      doc(
        { 'insecure-skip-tls-verify': true, 'tls-server-name': 'kubernetes.default', 'certificate-authority-data': Buffer.from('CA-DATA').toString('base64') },
        { token: SECRET },
      ),
    ),
  );
  const { tls } = await load(file).resolve();
  assert.deepEqual({ ...tls, ca: tls.ca?.toString() }, { rejectUnauthorized: false, servername: 'kubernetes.default', ca: 'CA-DATA' });
});

test('username and password are sent as basic auth, and combined with a token they are refused', async (t) => {
  const dir = tempDir(t);
  const creds = load(writeIn(dir, 'config', stringify(doc({}, { username: 'admin', password: SECRET }))));
  assert.deepEqual(await creds.authHeaders(), { authorization: `Basic ${Buffer.from(`admin:${SECRET}`).toString('base64')}` });
  assertRefused(
    () => load(writeIn(dir, 'both', stringify(doc({}, { username: 'admin', password: SECRET, token: SECRET })))),
    /both a token and username\/password/,
  );
});

test('as, as-uid, one as-groups entry and as-user-extra are sent as impersonation headers', async (t) => {
  const file = writeIn(
    tempDir(t),
    'config',
    stringify(
      doc(
        {},
        {
          token: SECRET,
          as: 'jane',
          'as-uid': '42',
          'as-groups': ['devs'],
          'as-user-extra': { 'example.com/team': ['blue'] },
        },
      ),
    ),
  );
  assert.deepEqual(await load(file).authHeaders(), {
    authorization: `Bearer ${SECRET}`,
    'impersonate-user': 'jane',
    'impersonate-uid': '42',
    'impersonate-group': 'devs',
    'impersonate-extra-example.com%2fteam': 'blue',
  });
});

test('impersonation the headers cannot carry (several groups, groups without a user) is refused, not dropped', (t) => {
  const dir = tempDir(t);
  assertRefused(() => load(writeIn(dir, 'a', stringify(doc({}, { as: 'jane', 'as-groups': ['a', 'b'] })))), /as-groups with more than one group/);
  assertRefused(() => load(writeIn(dir, 'b', stringify(doc({}, { 'as-groups': ['a'] })))), /requires "as"/);
});

test('a legacy auth-provider is refused with its name and a pointer to exec plugins', (t) => {
  const file = writeIn(tempDir(t), 'config', stringify(doc({}, { 'auth-provider': { name: 'gcp', config: { 'access-token': SECRET } } })));
  assertRefused(() => load(file), /auth-provider "gcp".*exec credential plugin/);
});

test('malformed YAML is reported by position without quoting the line, which may hold a token', (t) => {
  // The parser's own message for this line would quote the token.
  const file = writeIn(tempDir(t), 'config', `apiVersion: v1\nusers:\n- name: u\n  user:\n    token: ${SECRET}: x\n`);
  assertRefused(() => load(file), /config is not valid YAML \(BLOCK_AS_IMPLICIT_KEY at line 5, column 12\)/);
  assertRefused(() => load(writeIn(tempDir(t), 'list', '- just\n- a list\n')), /is not a YAML mapping/);
});

test('a missing current-context, context, cluster or user is named in the error', (t) => {
  const dir = tempDir(t);
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...doc({}, { token: SECRET }), 'current-context': '' }, /no current-context is set/],
    [{ ...doc({}, { token: SECRET }), 'current-context': 'nope' }, /current-context "nope" is not defined under contexts/],
    [{ ...doc({}, { token: SECRET }), clusters: [] }, /cluster "c" of context "ctx" is not defined/],
    [{ ...doc({}, { token: SECRET }), users: [] }, /user "u" of context "ctx" is not defined/],
    [doc({ server: '' }, { token: SECRET }), /cluster "c" has no server/],
    [doc({ server: 'ftp://x' }, { token: SECRET }), /server must be https:\/\/ or http:\/\//],
  ];
  for (const [i, [d, re]] of cases.entries()) assertRefused(() => load(writeIn(dir, `k${String(i)}`, stringify(d))), re);
});

test('a context without a user is anonymous but keeps the cluster TLS settings', async (t) => {
  const file = writeIn(tempDir(t), 'config', stringify(doc({ 'certificate-authority-data': Buffer.from('CA').toString('base64') }, undefined)));
  const { headers, tls } = await load(file).resolve();
  assert.deepEqual(headers, {});
  assert.equal(tls.ca?.toString(), 'CA');
});

test('several $KUBECONFIG files merge as in kubectl: first current-context, first definition of a name, paths relative to their own file', async (t) => {
  const a = tempDir(t);
  const b = tempDir(t);
  writeIn(a, 'ca.crt', 'CA-FROM-A');
  // a: the cluster (with a relative CA) and a decoy user; b: the current context and the real user.
  writeIn(
    a,
    'config',
    stringify({
      clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443', 'certificate-authority': 'ca.crt' } }],
      users: [{ name: 'u', user: { token: 'from-a' } }],
    }),
  );
  writeIn(
    b,
    'config',
    stringify({
      'current-context': 'ctx',
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      clusters: [{ name: 'c', cluster: { server: 'https://10.9.9.9:6443' } }],
      users: [{ name: 'u', user: { token: 'from-b' } }],
    }),
  );
  setEnv(t, { KUBECONFIG: [join(a, 'missing'), join(b, 'config'), join(a, 'config')].join(':') });
  const creds = loadKubeCredentials({ inCluster: false });
  assert.notEqual(creds, NOT_CONFIGURED);
  if (creds === NOT_CONFIGURED) return;
  assert.equal(creds.serverUrl.href, 'https://10.9.9.9:6443/');
  assert.deepEqual(await creds.authHeaders(), { authorization: 'Bearer from-b' });
  setEnv(t, { KUBECONFIG: [join(a, 'config'), join(b, 'config')].join(':') });
  const first = loadKubeCredentials({ inCluster: false });
  if (first === NOT_CONFIGURED) return assert.fail('configured');
  assert.equal(first.serverUrl.href, 'https://10.0.0.1:6443/');
  assert.equal((await first.resolve()).tls.ca?.toString(), 'CA-FROM-A');
  assert.deepEqual(await first.authHeaders(), { authorization: 'Bearer from-a' });
  setEnv(t, { KUBECONFIG: join(a, 'none') });
  assertRefused(() => loadKubeCredentials({ inCluster: false }), /none of the kubeconfig files exists/);
});

test('without $KUBECONFIG, ~/.kube/config is the default', async (t) => {
  const home = tempDir(t);
  mkdirSync(join(home, '.kube'));
  writeIn(home, '.kube/config', stringify(doc({ server: 'https://home.example:443' }, { token: SECRET })));
  setEnv(t, { KUBECONFIG: undefined, HOME: home });
  const creds = loadKubeCredentials({ inCluster: false });
  if (creds === NOT_CONFIGURED) return assert.fail('configured');
  assert.equal(creds.serverUrl.origin, 'https://home.example');
  assert.equal(creds.source, 'kubeconfig');
});

test('in cluster, an IPv6 service host is bracketed and missing service variables are named', (t) => {
  const prefix = tempDir(t);
  const sa = join(prefix, 'var/run/secrets/kubernetes.io/serviceaccount');
  mkdirSync(sa, { recursive: true });
  writeIn(sa, 'ca.crt', 'CA');
  writeIn(sa, 'token', SECRET);
  setEnv(t, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' });
  const creds = loadKubeCredentials({ inCluster: true, serviceAccountPathPrefix: prefix });
  if (creds === NOT_CONFIGURED) return assert.fail('configured');
  assert.equal(creds.serverUrl.href, 'https://[fd00::1]/');
  assert.equal(creds.source, 'in-cluster');
  setEnv(t, { KUBERNETES_SERVICE_HOST: undefined });
  assertRefused(() => loadKubeCredentials({ inCluster: true, serviceAccountPathPrefix: prefix }), /KUBERNETES_SERVICE_HOST/);
  setEnv(t, { KUBERNETES_SERVICE_HOST: '10.0.0.1' });
  assertRefused(() => loadKubeCredentials({ inCluster: true, serviceAccountPathPrefix: join(prefix, 'elsewhere') }), /in-cluster service account unusable/);
});
