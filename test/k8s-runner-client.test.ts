// The runner library end to end: @pipeops/tunnel-client over /ws/runner →
// gateway → agent → fake API server, through its undici dispatcher, its
// watch iterator, and its local plain-HTTP proxy driven by real kubectl
// (what `pipeops-tunnel proxy` serves).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fetch } from 'undici';
import { connect } from '@pipeops/tunnel-client';
import { FAKE_GIT_VERSION, FAKE_POD_NAMES, kubeconfigFor, kubectl } from '@pipeops/tunnel-testkit';
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
