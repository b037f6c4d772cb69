// The runner library end to end: @pipeops/tunnel-client over /ws/runner →
// gateway → agent → fake API server, through its undici dispatcher, its
// watch iterator, and its local plain-HTTP proxy driven by real kubectl
// (what `pipeops-tunnel proxy` serves).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { fetch, request } from 'undici';
import { connect } from '@pipeops/tunnel-client';
import { FAKE_GIT_VERSION, FAKE_POD_NAMES, kubeconfigFor, kubectl, waitFor } from '@pipeops/tunnel-testkit';
import { CLUSTER, RUNNER_TOKEN, startK8sPath } from './k8s-harness.ts';

test('tunnel-client: fetch through the dispatcher, a watch, and kubectl through the local proxy', async (t) => {
  const p = await startK8sPath(t);
  const tunnel = await connect({ gatewayUrl: `https://127.0.0.1:${p.gatewayPort}`, token: RUNNER_TOKEN, cluster: CLUSTER, ca: p.gatewayCa });
  t.after(() => tunnel.close());

  const res = await fetch(`${tunnel.baseUrl}/version`, { dispatcher: tunnel.dispatcher });
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);

  const events = tunnel.watch('/api/v1/namespaces/default/pods')[Symbol.asyncIterator]();
  const first = events.next();
  await p.fake.watch.waitForWatchers();
  p.fake.watch.emit({ metadata: { name: 'w-1' } });
  const ev = (await first).value as { type: string; object: { metadata: { name: string } } };
  assert.equal(ev.type, 'ADDED');
  assert.equal(ev.object.metadata.name, 'w-1');
  await events.return(undefined);

  const proxy = await tunnel.listen({ port: 0 });
  const kubeconfig = kubeconfigFor({ server: proxy.url, namespace: 'default' });
  const raw = await kubectl(['get', '--raw', '/version'], { kubeconfig });
  assert.equal(raw.code, 0, raw.stderr);
  assert.equal((JSON.parse(raw.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  const version = await kubectl(['version', '-o', 'json'], { kubeconfig });
  assert.equal((JSON.parse(version.stdout) as { serverVersion?: { gitVersion: string } }).serverVersion?.gitVersion, FAKE_GIT_VERSION);
  const names = await kubectl(['get', 'pods', '-o', 'name'], { kubeconfig });
  assert.equal(names.code, 0, names.stderr);
  assert.deepEqual(
    names.stdout.trim().split('\n'),
    FAKE_POD_NAMES.map((n) => `pod/${n}`),
  );
  assert.ok(
    p.fake.requests.every((r) => r.authorized),
    "every request reached the API server with the agent's credentials",
  );
  assert.equal(p.canary.hits.length, 0);
});

test("a WATCH outlives the mux streams' close timeout on every hop, through tunnel-client and through the endpoint", async (t) => {
  // Each request half-closes its stream once sent (runner → gateway, gateway → agent); the answer may take hours.
  const mux = { streamCloseTimeoutMs: 150 };
  const p = await startK8sPath(t, { gateway: { mux }, agent: { mux } });
  const tunnel = await connect({ gatewayUrl: `https://127.0.0.1:${p.gatewayPort}`, token: RUNNER_TOKEN, cluster: CLUSTER, ca: p.gatewayCa, mux });
  t.after(() => tunnel.close());
  const viaClient = tunnel.watch('/api/v1/namespaces/default/pods')[Symbol.asyncIterator]();
  const viaEndpoint = await request(`${p.base}/api/v1/namespaces/default/pods?watch=true`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(viaEndpoint.statusCode, 200);
  let endpointText = '';
  viaEndpoint.body.setEncoding('utf8');
  viaEndpoint.body.on('data', (text: string) => {
    endpointText += text;
  });
  const clientEvent = viaClient.next();
  await p.fake.watch.waitForWatchers(2);
  // What is under test is time itself: four close timeouts with no event on either watch.
  await delay(4 * mux.streamCloseTimeoutMs);
  assert.equal(p.fake.watch.active, 2, 'both watches are still open at the API server');
  assert.equal(p.fake.watch.emit({ metadata: { name: 'late' } }), 2);
  const ev = (await clientEvent).value as { type: string; object: { metadata: { name: string } } };
  assert.equal(ev.object.metadata.name, 'late');
  await waitFor(() => endpointText.includes('"late"'), { what: 'the event through the endpoint' });
  await viaClient.return(undefined);
  viaEndpoint.body.destroy();
  await waitFor(() => p.fake.watch.active === 0, { what: 'both watches to end upstream' });
});
