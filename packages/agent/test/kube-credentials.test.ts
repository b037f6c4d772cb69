import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type FakeApiServer, kubeconfigFor, startFakeApiServer, testCertificates } from '@pipeops/tunnel-testkit';
import { NOT_CONFIGURED, loadKubeCredentials } from '../src/kube/credentials.ts';
import { clientCertificate, readAll, setEnv, startKubeHarness, tempDir, writeIn } from './helpers/kube-harness.ts';

/** A kubeconfig (JSON is YAML) with one context. */
function kubeconfig(server: string, cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'ctx',
    clusters: [{ name: 'c', cluster: { server, ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
  });
}

test('a kubeconfig with a CA and a token gives the server origin, the CA and a bearer header', async (t) => {
  const certs = testCertificates('apiserver');
  const file = writeIn(tempDir(t), 'kubeconfig', kubeconfigFor({ server: 'https://127.0.0.1:6443/', token: 'tok-abc', caData: certs.caCert }));
  const creds = loadKubeCredentials({ kubeconfig: file, inCluster: false });
  assert.notEqual(creds, NOT_CONFIGURED);
  if (creds === NOT_CONFIGURED) return;
  assert.equal(creds.serverUrl.href, 'https://127.0.0.1:6443/');
  assert.equal(creds.source, 'kubeconfig');
  assert.equal(creds.tlsOptions.ca?.toString(), certs.caCert);
  assert.equal(creds.tlsOptions.rejectUnauthorized, true);
  assert.deepEqual(await creds.authHeaders(), { authorization: 'Bearer tok-abc' });
});

test('a client certificate from the kubeconfig authenticates the agent to an mTLS API server', async (t) => {
  const dir = tempDir(t);
  const client = clientCertificate(dir);
  const certs = testCertificates('apiserver');
  const server = createServer({ cert: certs.cert, key: certs.key, ca: client.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ cn: peer.subject.CN, authorization: req.headers.authorization ?? null }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const file = writeIn(
    dir,
    'kubeconfig',
    kubeconfig(
      `https://127.0.0.1:${String(port)}`,
      { 'certificate-authority-data': Buffer.from(certs.caCert).toString('base64') },
      { 'client-certificate-data': Buffer.from(client.cert).toString('base64'), 'client-key-data': Buffer.from(client.key).toString('base64') },
    ),
  );
  const h = await startKubeHarness(t, { kubeconfig: file, inCluster: false, start: false });
  const { res } = await h.request({ path: '/version', headers: { authorization: 'Bearer runner-secret' } });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(JSON.parse((await readAll(res)).toString()), { cn: 'agent-client', authorization: null });
});

/** An API server that takes `token-v2`, and a pod's service account (CA, namespace, `token`) for it under a temp prefix. */
async function inPod(t: TestContext, token: string): Promise<{ fake: FakeApiServer; sa: string; prefix: string }> {
  const fake = await startFakeApiServer({ token: 'token-v2' });
  t.after(() => fake.close());
  const prefix = tempDir(t);
  const sa = join(prefix, 'var/run/secrets/kubernetes.io/serviceaccount');
  mkdirSync(sa, { recursive: true });
  writeIn(sa, 'ca.crt', fake.caCert);
  writeIn(sa, 'namespace', 'pipeops');
  writeIn(sa, 'token', token);
  setEnv(t, { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(fake.port) });
  return { fake, sa, prefix };
}

test('in cluster, with files checked on every request, a rotated service-account token is used from the next request on', async (t) => {
  const { fake, sa, prefix } = await inPod(t, 'token-v2');
  const h = await startKubeHarness(t, { inCluster: true, serviceAccountPathPrefix: prefix, fileRecheckMs: 0, start: false });
  const statuses: number[] = [];
  // A loader that caches the token file for a while (client-node's 60 s) would send token-v2 twice.
  for (const token of ['token-v2', 'token-v3', 'token-v2']) {
    writeIn(sa, 'token', token);
    const { res } = await h.request({ path: '/version' });
    statuses.push(res.statusCode ?? 0);
    await readAll(res);
  }
  assert.deepEqual(
    fake.requests.map((r) => r.headers.authorization),
    ['Bearer token-v2', 'Bearer token-v3', 'Bearer token-v2'],
  );
  assert.deepEqual(statuses, [200, 401, 200]);
});

test('in cluster, a rotated token is used once the file is due a check, and at once after a 401', async (t) => {
  const { fake, sa, prefix } = await inPod(t, 'token-v1');
  // Checked once an hour: only a 401 makes the agent look at the file again within this test.
  const h = await startKubeHarness(t, { inCluster: true, serviceAccountPathPrefix: prefix, fileRecheckMs: 3_600_000, start: false });
  const statusOf = async (): Promise<number> => {
    const { res } = await h.request({ path: '/version' });
    await readAll(res);
    return res.statusCode ?? 0;
  };
  writeIn(sa, 'token', 'token-v2');
  assert.equal(await statusOf(), 401, 'within the recheck period the token as read at start is sent');
  assert.equal(await statusOf(), 200, 'the 401 made the next request read the file again');
  writeIn(sa, 'token', 'token-v3');
  assert.equal(await statusOf(), 200, 'a change is not seen before the file is due a check');
  assert.deepEqual(
    fake.requests.map((r) => r.headers.authorization),
    ['Bearer token-v1', 'Bearer token-v2', 'Bearer token-v2'],
  );
});

test('an exec credential plugin is run for the token, and run again after the API server rejects it', async (t) => {
  const fake = await startFakeApiServer({ token: 'exec-2' });
  t.after(() => fake.close());
  const dir = tempDir(t);
  const source = writeIn(dir, 'source', 'exec-1');
  const runs = join(dir, 'runs');
  const plugin = writeIn(
    dir,
    'plugin.mjs',
    `
    import { appendFileSync, readFileSync } from 'node:fs';
    appendFileSync(process.env.RUNS, 'x');
    const token = readFileSync(process.env.SOURCE, 'utf8');
    process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token } }));
  `,
  );
  const file = writeIn(
    dir,
    'kubeconfig',
    kubeconfig(
      fake.url,
      { 'certificate-authority-data': Buffer.from(fake.caCert).toString('base64') },
      {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: process.execPath,
          args: [plugin],
          interactiveMode: 'Never',
          env: [
            { name: 'SOURCE', value: source },
            { name: 'RUNS', value: runs },
          ],
        },
      },
    ),
  );
  const h = await startKubeHarness(t, { kubeconfig: file, inCluster: false, start: false });
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) {
    if (i === 1) writeIn(dir, 'source', 'exec-2');
    const { res } = await h.request({ path: '/version' });
    statuses.push(res.statusCode ?? 0);
    await readAll(res);
  }
  assert.deepEqual(statuses, [401, 200, 200]);
  assert.equal(readFileSync(runs, 'utf8'), 'xx', 'run once, again after the 401, then cached');
});

test('unusable credentials make every request a 503 Status and name the reason for /ready', async (t) => {
  const h = await startKubeHarness(t, { kubeconfig: '/nonexistent/kubeconfig', inCluster: false });
  const { res } = await h.request({ path: '/api/v1/pods' });
  assert.equal(res.statusCode, 503);
  const body = JSON.parse((await readAll(res)).toString()) as Record<string, unknown>;
  assert.equal(body.kind, 'Status');
  assert.equal(body.reason, 'ServiceUnavailable');
  assert.match(String(body.message), /nonexistent/);
  const check = h.kube.readinessCheck?.check();
  assert.ok(typeof check === 'string' && check.includes('/nonexistent/kubeconfig'));
  assert.equal(h.kube.status().apiServer?.reachable, false);
});

test('nothing configured and no default kubeconfig is reported as such, not as an error', (t) => {
  setEnv(t, { KUBECONFIG: undefined, HOME: tempDir(t) });
  assert.equal(loadKubeCredentials({ inCluster: false }), NOT_CONFIGURED);
  assert.throws(() => loadKubeCredentials({ inCluster: false, kubeconfig: '/nonexistent' }), { code: 'PT_ERR_KUBE_CREDENTIALS' });
});
