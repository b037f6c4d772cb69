import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { parse } from 'yaml';
import {
  collectLogs,
  FAKE_GIT_VERSION,
  kubeconfigFor,
  kubectl,
  startCanaryServer,
  startFakeApiServer,
  testCertificates,
  waitFor,
  writeCaFile,
} from '../src/index.ts';

test('the canary records plain and TLS connections on one port and answers both', async (t) => {
  const canary = await startCanaryServer();
  t.after(() => canary.close());
  assert.equal(canary.hits.length, 0);
  const plain = await request(`${canary.url}/x`);
  assert.equal(await plain.body.text(), 'canary\n');
  const dispatcher = new Agent({ connect: { ca: testCertificates().caCert } });
  t.after(() => dispatcher.close());
  const secure = await request(`${canary.httpsUrl}/y`, { dispatcher });
  assert.equal(await secure.body.text(), 'canary\n');
  assert.equal(canary.hits.length, 2);
  assert.deepEqual(
    canary.hits.map((h) => h.tls),
    [false, true],
  );
});

test('kubeconfigFor writes a one-context kubeconfig with which kubectl reaches the fake API server', async (t) => {
  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  const dir = mkdtempSync(join(tmpdir(), 'testkit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const caFile = writeCaFile(dir, { caCert: fake.caCert, cert: '', key: '' });
  const kubeconfig = kubeconfigFor({ server: fake.url, token: fake.token, caFile, namespace: 'default' });
  const doc = parse(kubeconfig) as { clusters: Array<{ cluster: Record<string, unknown> }>; 'current-context': string };
  assert.equal(doc.clusters[0]?.cluster.server, fake.url);
  const res = await kubectl(['get', '--raw', '/version'], { kubeconfig });
  assert.equal(res.code, 0, res.stderr);
  assert.equal((JSON.parse(res.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  const denied = await kubectl(['get', '--raw', '/version'], { kubeconfig: kubeconfigFor({ server: fake.url, token: 'wrong', caFile }) });
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /Unauthorized/);
});

test('collectLogs keeps parsed records and raw text; waitFor resolves the value or names what timed out', async () => {
  const logs = collectLogs();
  logs.logger('info').info({ requestId: 'r1', status: 200 }, 'request');
  assert.equal(logs.find((r) => r.requestId === 'r1')?.status, 200);
  assert.match(logs.text(), /"msg":"request"/);
  let n = 0;
  assert.equal(await waitFor(() => (++n >= 3 ? n : 0)), 3);
  await assert.rejects(
    waitFor(() => false, { timeoutMs: 30, what: 'nothing' }),
    /timed out after 30 ms waiting for nothing/,
  );
});
