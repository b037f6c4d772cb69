import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';
import { NOT_CONFIGURED, loadKubeCredentials } from '../src/kube/credentials.ts';
import type { KubeCredentials } from '../src/kube/credentials.ts';
import { tempDir, writeIn } from './helpers/kube-harness.ts';

const V1 = 'client.authentication.k8s.io/v1';
const V1BETA1 = 'client.authentication.k8s.io/v1beta1';
const SECRET = 'exec-secret-0123456789';

/**
 * A real plugin: `dir/bin/plugin`, a shell script running Node on
 * `plugin.mjs`. Each run appends to `dir/runs`, records its argv and
 * KUBERNETES_EXEC_INFO in `dir/info.json`, and prints `dir/out` (or does what
 * `dir/mode` says: fail, hang, garbage).
 */
function writePlugin(dir: string): string {
  mkdirSync(join(dir, 'bin'));
  writeIn(
    dir,
    'bin/plugin.mjs',
    `
    import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
    import { join } from 'node:path';
    const dir = process.env.PLUGIN_DIR;
    appendFileSync(join(dir, 'runs'), 'x');
    writeFileSync(join(dir, 'info.json'), JSON.stringify({ argv: process.argv.slice(2), info: JSON.parse(process.env.KUBERNETES_EXEC_INFO ?? 'null'), pipeopsEnv: Object.keys(process.env).filter((k) => k.startsWith('PIPEOPS_')) }));
    const mode = existsSync(join(dir, 'mode')) ? readFileSync(join(dir, 'mode'), 'utf8') : 'ok';
    if (mode === 'hang') setInterval(() => {}, 1000);
    else if (mode === 'fail') { process.stdout.write('${SECRET}'); process.stderr.write('not logged in; run login\\n'); process.exit(3); }
    else if (mode === 'garbage') process.stdout.write('token=${SECRET}');
    else process.stdout.write(readFileSync(join(dir, 'out'), 'utf8'));
  `,
  );
  const script = writeIn(dir, 'bin/plugin', `#!/bin/sh\nexec '${process.execPath}' "$(dirname "$0")/plugin.mjs" "$@"\n`);
  chmodSync(script, 0o755);
  return script;
}

/** An ExecCredential answer. */
function credential(apiVersion: string, status: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion, kind: 'ExecCredential', status });
}

/** Writes a kubeconfig next to the plugin whose user runs it as `./bin/plugin` (relative to the kubeconfig). */
function kubeconfigWithPlugin(dir: string, exec: Record<string, unknown>, cluster: Record<string, unknown> = {}): string {
  return writeIn(
    dir,
    'config',
    stringify({
      'current-context': 'ctx',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', ...cluster } }],
      users: [
        {
          name: 'u',
          user: { exec: { apiVersion: V1, command: './bin/plugin', interactiveMode: 'Never', env: [{ name: 'PLUGIN_DIR', value: dir }], ...exec } },
        },
      ],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    }),
  );
}

function setup(
  t: TestContext,
  exec: Record<string, unknown> = {},
  cluster: Record<string, unknown> = {},
  execTimeoutMs?: number,
): { dir: string; creds: KubeCredentials; runs: () => number } {
  const dir = tempDir(t);
  writePlugin(dir);
  const file = kubeconfigWithPlugin(dir, exec, cluster);
  const creds = loadKubeCredentials({ kubeconfig: file, inCluster: false, ...(execTimeoutMs === undefined ? {} : { execTimeoutMs }) });
  assert.notEqual(creds, NOT_CONFIGURED);
  const runs = (): number => (existsSync(join(dir, 'runs')) ? readFileSync(join(dir, 'runs'), 'utf8').length : 0);
  return { dir, creds: creds as KubeCredentials, runs };
}

/** Resolves and expects PT_ERR_KUBE_CREDENTIALS matching `re`, the secret nowhere in the message. */
async function assertFails(creds: KubeCredentials, re: RegExp): Promise<void> {
  await assert.rejects(creds.resolve(), (e: unknown) => {
    const err = e as { code?: unknown; message: string };
    assert.equal(err.code, 'PT_ERR_KUBE_CREDENTIALS');
    assert.match(err.message, re);
    assert.ok(!err.message.includes(SECRET), `secret in message: ${err.message}`);
    return true;
  });
}

test('a v1beta1 plugin given by a path relative to the kubeconfig gets its args, env and the cluster info, not the agent token, and its token is sent', async (t) => {
  const saved = process.env.PIPEOPS_PIPEOPS_TOKEN;
  process.env.PIPEOPS_PIPEOPS_TOKEN = 'agent-token';
  t.after(() => {
    if (saved === undefined) delete process.env.PIPEOPS_PIPEOPS_TOKEN;
    else process.env.PIPEOPS_PIPEOPS_TOKEN = saved;
  });
  const ca = Buffer.from('CA-PEM');
  const { dir, creds } = setup(
    t,
    { apiVersion: V1BETA1, args: ['get-token', '--cluster=c'], provideClusterInfo: true },
    {
      'certificate-authority-data': ca.toString('base64'),
      'tls-server-name': 'api.internal',
      extensions: [{ name: 'client.authentication.k8s.io/exec', extension: { audience: 'x' } }],
    },
  );
  writeIn(dir, 'out', credential(V1BETA1, { token: SECRET }));
  assert.deepEqual(await creds.authHeaders(), { authorization: `Bearer ${SECRET}` });
  const { argv, info, pipeopsEnv } = JSON.parse(readFileSync(join(dir, 'info.json'), 'utf8')) as { argv: string[]; info: unknown; pipeopsEnv: string[] };
  assert.deepEqual(argv, ['get-token', '--cluster=c']);
  assert.deepEqual(pipeopsEnv, [], 'the agent settings stay out of the plugin environment');
  assert.deepEqual(info, {
    apiVersion: V1BETA1,
    kind: 'ExecCredential',
    spec: {
      interactive: false,
      cluster: {
        server: 'https://127.0.0.1:6443',
        'tls-server-name': 'api.internal',
        'certificate-authority-data': ca.toString('base64'),
        config: { audience: 'x' },
      },
    },
  });
});

test('a v1 plugin without provideClusterInfo gets no cluster, and its client certificate is used for TLS', async (t) => {
  const { dir, creds } = setup(t);
  writeIn(dir, 'out', credential(V1, { clientCertificateData: 'CERT-PEM', clientKeyData: 'KEY-PEM' }));
  const { headers, tls } = await creds.resolve();
  assert.deepEqual(headers, {});
  assert.equal(tls.cert, 'CERT-PEM');
  assert.equal(tls.key, 'KEY-PEM');
  assert.deepEqual((JSON.parse(readFileSync(join(dir, 'info.json'), 'utf8')) as { info: unknown }).info, {
    apiVersion: V1,
    kind: 'ExecCredential',
    spec: { interactive: false },
  });
});

test('a credential is cached until its expirationTimestamp and fetched again once expired', async (t) => {
  const { dir, creds, runs } = setup(t);
  writeIn(dir, 'out', credential(V1, { token: 'fresh', expirationTimestamp: '2999-01-01T00:00:00Z' }));
  const first = await creds.resolve();
  const second = await creds.resolve();
  assert.equal(runs(), 1, 'an unexpired credential is reused');
  assert.equal(second, first, 'and so is the answer built from it, while nothing in it changed');
  assert.equal(second.headers.authorization, 'Bearer fresh');
  const expired = setup(t);
  writeIn(expired.dir, 'out', credential(V1, { token: 'stale', expirationTimestamp: '2000-01-01T00:00:00Z' }));
  await expired.creds.resolve();
  await expired.creds.resolve();
  assert.equal(expired.runs(), 2, 'an expired credential is fetched again');
});

test('invalidate() after a 401 runs the plugin again, and concurrent requests share one run', async (t) => {
  const { dir, creds, runs } = setup(t);
  writeIn(dir, 'out', credential(V1, { token: 'one' }));
  const all = await Promise.all([creds.authHeaders(), creds.authHeaders(), creds.authHeaders()]);
  assert.deepEqual(
    all.map((h) => h.authorization),
    ['Bearer one', 'Bearer one', 'Bearer one'],
  );
  assert.equal(runs(), 1);
  writeIn(dir, 'out', credential(V1, { token: 'two' }));
  assert.deepEqual(await creds.authHeaders(), { authorization: 'Bearer one' }, 'cached without an expiry');
  creds.invalidate();
  assert.deepEqual(await creds.authHeaders(), { authorization: 'Bearer two' });
  assert.equal(runs(), 2);
});

test('a failing plugin is reported with its exit code and stderr, never its stdout', async (t) => {
  const { dir, creds } = setup(t);
  writeIn(dir, 'mode', 'fail');
  await assertFails(creds, /exec plugin ".*bin\/plugin" failed \(exit code 3\): not logged in; run login/);
});

test('output that is not an ExecCredential of the configured version is refused without quoting it', async (t) => {
  const { dir, creds } = setup(t);
  writeIn(dir, 'mode', 'garbage');
  await assertFails(creds, /did not print an ExecCredential as JSON/);
  writeIn(dir, 'mode', 'ok');
  writeIn(dir, 'out', credential(V1BETA1, { token: SECRET }));
  await assertFails(creds, /answered apiVersion "client.authentication.k8s.io\/v1beta1", the kubeconfig asks for client.authentication.k8s.io\/v1/);
  writeIn(dir, 'out', credential(V1, { clientCertificateData: SECRET }));
  await assertFails(creds, /only one of status.clientCertificateData and status.clientKeyData/);
  writeIn(dir, 'out', credential(V1, {}));
  await assertFails(creds, /neither status.token nor a client certificate/);
});

test('a plugin that does not finish in execTimeoutMs is killed and reported', async (t) => {
  const { dir, creds } = setup(t, {}, {}, 300);
  writeIn(dir, 'mode', 'hang');
  await assertFails(creds, /did not finish within 300 ms/);
});

test('a plugin that cannot be found is reported with its install hint', async (t) => {
  const { creds } = setup(t, { command: 'pipeops-no-such-plugin', installHint: 'install it with brew' });
  await assertFails(creds, /exec plugin "pipeops-no-such-plugin" could not be started: ENOENT \(install it with brew\)/);
});

test('an unsupported exec apiVersion fails the load', (t) => {
  const dir = tempDir(t);
  const file = kubeconfigWithPlugin(dir, { apiVersion: 'client.authentication.k8s.io/v1alpha1' });
  assert.throws(() => loadKubeCredentials({ kubeconfig: file, inCluster: false }), { code: 'PT_ERR_KUBE_CREDENTIALS', message: /apiVersion must be one of/ });
});
