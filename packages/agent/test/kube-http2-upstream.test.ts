// Regression: a real kube-apiserver offers HTTP/2 (ALPN h2), and undici 8
// negotiates it when allowed; the agent's byte-faithful HTTP/1.1 relay (raw
// headers, trailers, 101 upgrades) then broke on every request. The stand-in
// API server only spoke HTTP/1.1, so only the real-cluster matrix caught it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createSecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { kubeconfigFor, testCertificates } from '@pipeops/tunnel-testkit';
import { readAll, startKubeHarness, tempDir, writeIn } from './helpers/kube-harness.ts';

test('an API server that offers HTTP/2 is still spoken to in HTTP/1.1, and the response relayed intact', async (t) => {
  const certs = testCertificates('apiserver');
  const protocols: string[] = [];
  // Offers h2 first, accepts HTTP/1.1 too — like kube-apiserver.
  const server = createSecureServer({ cert: certs.cert, key: certs.key, allowHTTP1: true }, (req, res) => {
    protocols.push(req.httpVersion);
    res.setHeader('content-type', 'application/json');
    res.setHeader('warning', ['299 - "first"', '299 - "second"']);
    res.end(JSON.stringify({ gitVersion: 'v1.33.0-h2-test' }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const kubeconfig = writeIn(tempDir(t), 'kubeconfig', kubeconfigFor({ server: url, token: 'agent-token-h2', caData: certs.caCert }));
  const h = await startKubeHarness(t, { kubeconfig, inCluster: false, start: false });
  const { res } = await h.request({ path: '/version', requestId: 'h2-1', headers: { host: 'gateway.example' } });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.headers.warning, '299 - "first", 299 - "second"');
  assert.equal(JSON.parse((await readAll(res)).toString()).gitVersion, 'v1.33.0-h2-test');
  assert.deepEqual(protocols, ['1.1']);
});
