// The agent only ever talks to its configured API server: absolute-form
// targets, CONNECT and Host tricks are refused with 400 — at the gateway, and
// at the agent when sent on a raw stream that bypasses the gateway — and a
// second local server (the canary) is never dialled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { request } from 'undici';
import { rawExchange, startK8sPath, RUNNER_TOKEN, type K8sPath } from './k8s-harness.ts';

async function viaGateway(p: K8sPath, text: string): Promise<{ status: number; text: string }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: p.gatewayPort, ca: p.gatewayCa });
  await once(socket, 'secureConnect');
  return rawExchange(socket, text);
}

async function viaAgentStream(p: K8sPath, id: string, text: string): Promise<{ status: number; text: string }> {
  const stream = await p.gateway.openStream('c1', { kind: 'http', requestId: id, runnerId: 'isolation-test', cluster: 'c1' });
  return rawExchange(stream, text);
}

test('absolute-form targets, CONNECT and a foreign Host sent raw to the gateway get 400 and never reach the canary', async (t) => {
  const p = await startK8sPath(t);
  const c = `127.0.0.1:${p.canary.port}`;
  const auth = `Authorization: Bearer ${RUNNER_TOKEN}\r\n`;
  const tries = {
    'absolute-form to the canary': `GET http://${c}/x HTTP/1.1\r\nHost: ${c}\r\n${auth}Connection: close\r\n\r\n`,
    'absolute-form with a cluster path': `GET https://${c}/k8s/clusters/c1/version HTTP/1.1\r\nHost: ${c}\r\n${auth}Connection: close\r\n\r\n`,
    'CONNECT to the canary': `CONNECT ${c} HTTP/1.1\r\nHost: ${c}\r\n${auth}\r\n`,
  };
  for (const [what, text] of Object.entries(tries)) {
    const res = await viaGateway(p, text);
    assert.equal(res.status, 400, `${what}: ${res.text.slice(0, 200)}`);
  }
  // A Host header naming the canary on an ordinary cluster path: refused, or served by the
  // configured API server only — the agent always sets Host to the API server's.
  const hostTrick = await viaGateway(p, `GET /k8s/clusters/c1/version HTTP/1.1\r\nHost: ${c}\r\n${auth}Connection: close\r\n\r\n`);
  if (hostTrick.status !== 400) {
    assert.equal(hostTrick.status, 200, hostTrick.text.slice(0, 200));
    const seen = p.fake.requests.find((r) => r.path === '/version');
    assert.equal(seen?.headers.host, `127.0.0.1:${p.fake.port}`);
  }
  // Scheme-relative paths stay paths on the API server.
  const sneaky = await request(`https://127.0.0.1:${p.gatewayPort}/k8s/clusters/c1//${c}/x`, {
    dispatcher: p.dispatcher,
    headers: { authorization: `Bearer ${RUNNER_TOKEN}` },
  });
  await sneaky.body.dump();
  assert.ok([400, 404].includes(sneaky.statusCode), `//host/path: ${sneaky.statusCode}`);
  assert.equal(p.canary.hits.length, 0, 'the canary was never dialled');
});

test('the agent itself refuses absolute-form, CONNECT, asterisk-form and a foreign Host with 400 on a raw stream, and dials nothing', async (t) => {
  const p = await startK8sPath(t);
  const c = `127.0.0.1:${p.canary.port}`;
  const before = p.fake.requests.length;
  const tries = {
    'absolute-form': `GET http://${c}/x HTTP/1.1\r\nHost: ${c}\r\n\r\n`,
    'absolute-form https': `GET https://${c}/api HTTP/1.1\r\nHost: ${c}\r\n\r\n`,
    CONNECT: `CONNECT ${c} HTTP/1.1\r\nHost: ${c}\r\n\r\n`,
    'asterisk-form': `OPTIONS * HTTP/1.1\r\nHost: ${c}\r\n\r\n`,
  };
  let i = 0;
  for (const [what, text] of Object.entries(tries)) {
    const res = await viaAgentStream(p, `raw-${i++}`, text);
    assert.equal(res.status, 400, `${what}: ${res.text.slice(0, 200)}`);
    assert.match(res.text, /"kind":"Status"/, `${what}: a Status body`);
  }
  assert.equal(p.fake.requests.length, before, 'none of them reached the API server either');
  const hostTrick = await viaAgentStream(p, 'raw-host', `GET /version HTTP/1.1\r\nHost: ${c}\r\n\r\n`);
  if (hostTrick.status !== 400) {
    assert.equal(hostTrick.status, 200, hostTrick.text.slice(0, 200));
    assert.equal(p.fake.requests.at(-1)?.headers.host, `127.0.0.1:${p.fake.port}`, "Host rewritten to the API server's");
  }
  assert.equal(p.canary.hits.length, 0, 'the canary was never dialled');
});
