import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:https';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { generateDevCertificates } from '../src/index.ts';
import { devCerts } from './helpers/gateway.ts';

test('the dev server certificate is signed by the dev CA and verifies for 127.0.0.1 and localhost', async (t) => {
  const { caCert, cert, key } = devCerts();
  const ca = new X509Certificate(caCert);
  const leaf = new X509Certificate(cert);
  assert.equal(ca.ca, true);
  assert.equal(leaf.ca, false);
  assert.ok(leaf.verify(ca.publicKey));
  assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(leaf.checkHost('localhost'), 'localhost');

  const server = createServer({ cert, key }, (_req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  for (const host of ['127.0.0.1', 'localhost']) {
    const body = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', servername: host === 'localhost' ? 'localhost' : '', port, ca: caCert, agent: false, headers: { host } }, (res) => {
        let s = '';
        res.on('data', (c: Buffer) => {
          s += c.toString();
        });
        res.on('end', () => resolve(s));
      })
        .on('error', reject)
        .end();
    });
    assert.equal(body, 'ok', host);
  }
});

test('the dev server certificate covers the per-cluster addresses *.<suffix>, one label deep, and none with an empty suffix', () => {
  const leaf = new X509Certificate(devCerts().cert);
  assert.equal(leaf.checkHost('c1.clusters.localhost'), '*.clusters.localhost');
  assert.equal(leaf.checkHost('a.c1.clusters.localhost'), undefined);
  const custom = new X509Certificate(generateDevCertificates({ hosts: ['localhost'], clusterAddressSuffix: 'k8s.example.test' }).cert);
  assert.equal(custom.checkHost('prod.k8s.example.test'), '*.k8s.example.test');
  assert.equal(custom.checkHost('c1.clusters.localhost'), undefined);
  const none = new X509Certificate(generateDevCertificates({ hosts: ['localhost'], clusterAddressSuffix: '' }).cert);
  assert.equal(none.checkHost('c1.clusters.localhost'), undefined);
  assert.equal(none.checkHost('localhost'), 'localhost');
});
