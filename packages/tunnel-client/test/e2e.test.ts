// End to end: tunnel-client → real gateway (/ws/runner) → real agent → the
// testkit's fake API server. The fake checks the agent's token: a request
// that reaches it authorized proves the runner's own credentials did not.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { fetch } from 'undici';
import { CoreV1Api, Exec, Watch, type V1Status } from '@kubernetes/client-node';
import { FAKE_GIT_VERSION, kubeconfigFor, kubectl, waitFor } from '@pipeops/tunnel-testkit';
import { connect } from '../src/index.ts';
import { CLUSTER, RUNNER_TOKEN, startRealPath } from './helpers/real-path.ts';

describe('through the real gateway and agent', () => {
  test('fetch, request() and CoreV1Api reach the API server with the agent credentials only', async (t) => {
    const path = await startRealPath(t);
    const tunnel = await connect({ gatewayUrl: path.gatewayUrl, token: RUNNER_TOKEN, cluster: CLUSTER, ca: path.gatewayCa, runnerId: 'e2e-runner' });
    t.after(() => tunnel.close());

    const res = await fetch(`${tunnel.baseUrl}/version`, { dispatcher: tunnel.dispatcher, headers: { authorization: 'Bearer runner-must-not-leak' } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
    const seen = path.fake.requests.filter((r) => r.path === '/version').at(-1);
    assert.ok(seen?.authorized, 'the agent authenticated upstream');
    assert.notEqual(seen?.headers.authorization, 'Bearer runner-must-not-leak');

    const r = await tunnel.request({ id: 'list-1', method: 'GET', path: '/api/v1/namespaces/default/pods' });
    assert.equal(r.status, 200);
    assert.equal((r.body as { kind: string }).kind, 'PodList');

    const pods = await tunnel.kubeConfig().makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'default' });
    assert.ok(pods.items.length > 0);
  });

  test('Watch through kubeConfig(), watch() and a log follow deliver each event as it is emitted', async (t) => {
    const path = await startRealPath(t);
    const tunnel = await connect({ gatewayUrl: path.gatewayUrl, token: RUNNER_TOKEN, cluster: CLUSTER, ca: path.gatewayCa });
    t.after(() => tunnel.close());

    const events: string[] = [];
    const ctl = await new Watch(tunnel.kubeConfig()).watch(
      '/api/v1/namespaces/default/pods',
      {},
      (type, obj: { metadata: { name: string } }) => {
        events.push(`${type}:${obj.metadata.name}`);
      },
      () => {},
    );
    await path.fake.watch.waitForWatchers(1);
    path.fake.watch.emit({ metadata: { name: 'w1' } });
    await waitFor(() => events.length === 1, { what: 'the Watch event' });
    ctl.abort();
    await waitFor(() => path.fake.watch.active === 0, { what: 'the upstream watch to be aborted' });

    const ac = new AbortController();
    const iter = tunnel.watch<{ metadata: { name: string } }>('/api/v1/namespaces/default/pods', { signal: ac.signal });
    const next = iter.next();
    await path.fake.watch.waitForWatchers(1);
    path.fake.watch.emit({ metadata: { name: 'w2' } }, 'MODIFIED');
    const first = await next;
    assert.deepEqual([first.value?.type, first.value?.object.metadata.name], ['MODIFIED', 'w2']);
    await iter.return(undefined);
    await waitFor(() => path.fake.watch.active === 0, { what: 'watch() to cancel upstream' });

    const logs = await tunnel.request({ method: 'GET', path: `/api/v1/namespaces/default/pods/${'web-0'}/log`, query: { follow: ['true'] }, stream: true });
    const it = logs[Symbol.asyncIterator]();
    await path.fake.logs.waitForFollowers(1);
    path.fake.logs.write('hello from the pod');
    assert.equal((await it.next()).value, 'hello from the pod');
    logs.cancel();
    await waitFor(() => path.fake.logs.active === 0, { what: 'the log follow to be cancelled upstream' });
  });

  test('Exec through kubeConfig() speaks a channel WebSocket end to end', async (t) => {
    const path = await startRealPath(t);
    const tunnel = await connect({ gatewayUrl: path.gatewayUrl, token: RUNNER_TOKEN, cluster: CLUSTER, ca: path.gatewayCa });
    t.after(() => tunnel.close());
    const stdout = new PassThrough();
    let out = '';
    stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    let status: V1Status | undefined;
    const ws = await new Exec(tunnel.kubeConfig()).exec('default', 'web-0', 'app', ['sh'], stdout, null, null, false, (s) => {
      status = s;
    });
    // The fake echoes each message: a stdout-channel frame comes back as stdout.
    ws.send(Buffer.concat([Buffer.from([1]), Buffer.from('hello exec')]));
    await waitFor(() => out === 'hello exec', { what: 'the echoed stdout' });
    ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('close')]));
    await once(ws as unknown as NodeJS.EventEmitter, 'close');
    assert.equal(status, undefined);
    assert.ok(path.fake.requests.some((r) => r.upgrade && r.path.includes('/exec') && r.authorized));
  });

  test('kubectl get --raw /version works through listen()', async (t) => {
    const path = await startRealPath(t);
    const tunnel = await connect({ gatewayUrl: path.gatewayUrl, token: RUNNER_TOKEN, cluster: CLUSTER, ca: path.gatewayCa });
    t.after(() => tunnel.close());
    const proxy = await tunnel.listen();
    const r = await kubectl(['get', '--raw', '/version'], { kubeconfig: kubeconfigFor({ server: proxy.url }) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  });

  test('a runner token refused by the gateway, or a cluster it may not reach, rejects connect() with PT_ERR_AUTH_REJECTED', async (t) => {
    const path = await startRealPath(t);
    await assert.rejects(connect({ gatewayUrl: path.gatewayUrl, token: 'not-a-runner-token', cluster: CLUSTER, ca: path.gatewayCa }), {
      code: 'PT_ERR_AUTH_REJECTED',
      status: 401,
    });
    await assert.rejects(connect({ gatewayUrl: path.gatewayUrl, token: RUNNER_TOKEN, cluster: 'c2', ca: path.gatewayCa }), {
      code: 'PT_ERR_AUTH_REJECTED',
      status: 403,
    });
  });

  test('after the gateway restarts the tunnel reconnects and requests work again', async (t) => {
    const path = await startRealPath(t);
    const tunnel = await connect({
      gatewayUrl: path.gatewayUrl,
      token: RUNNER_TOKEN,
      cluster: CLUSTER,
      ca: path.gatewayCa,
      reconnect: { intervalMs: 50, maxIntervalMs: 200 },
    });
    t.after(() => tunnel.close());
    const lost = once(tunnel, 'disconnected');
    await path.stopGateway();
    await lost;
    await assert.rejects(tunnel.request({ method: 'GET', path: '/version' }), { code: 'PT_ERR_CLIENT_DISCONNECTED' });
    await path.startGateway();
    await waitFor(() => tunnel.state === 'connected' && path.agent.state === 'connected', { timeoutMs: 10_000, what: 'runner and agent to reconnect' });
    const r = await waitFor(
      async () => {
        const res = await tunnel.request({ method: 'GET', path: '/version' });
        return res.status === 200 ? res : undefined;
      },
      { timeoutMs: 10_000, what: '/version through the new gateway' },
    );
    assert.equal((r.body as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  });
});
