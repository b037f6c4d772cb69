import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { CoreV1Api, Exec, Log, Watch, type V1Status } from '@kubernetes/client-node';
import { connectToTestApp } from './helpers/connected-app.ts';
import { until } from './helpers/test-app.ts';
import type { TestContext } from 'node:test';

const TOKEN = 'runner-tkn-kc-3e4f';

const setup = (t: TestContext) => connectToTestApp(t, TOKEN);

test('kubeConfig() points at the tunnel base URL and carries no credentials', async (t) => {
  const { tunnel } = await setup(t);
  const kc = tunnel.kubeConfig();
  assert.equal(kc.getCurrentCluster()?.server, tunnel.baseUrl);
  assert.equal(kc.getCurrentUser()?.token, undefined);
});

test('CoreV1Api through kubeConfig() lists pods over the tunnel', async (t) => {
  const { tunnel, app } = await setup(t);
  const api = tunnel.kubeConfig().makeApiClient(CoreV1Api);
  const list = await api.listNamespacedPod({ namespace: 'default' });
  assert.deepEqual(
    list.items.map((p) => p.metadata?.name),
    ['p0'],
  );
  assert.equal(app.seen.at(-1)?.url, '/api/v1/namespaces/default/pods');
});

test('Watch through kubeConfig() delivers events as they are pushed and stops on abort', async (t) => {
  const { tunnel, app } = await setup(t);
  const events: string[] = [];
  let ended: unknown = 'pending';
  const ctl = await new Watch(tunnel.kubeConfig()).watch(
    '/api/v1/namespaces/default/pods',
    {},
    (type, obj: { metadata: { name: string } }) => {
      events.push(`${type}:${obj.metadata.name}`);
    },
    (err) => {
      ended = err;
    },
  );
  await until(() => events.length === 1 && app.openWatches() === 1, 'the first event');
  app.pushEvent('MODIFIED', 'p1');
  await until(() => events.length === 2, 'the pushed event');
  assert.deepEqual(events, ['ADDED:p0', 'MODIFIED:p1']);
  ctl.abort();
  await until(() => app.aborted.length === 1, 'the app to see the watch end');
  await until(() => ended !== 'pending', 'the done callback');
});

test('Log with follow through kubeConfig() streams lines as they come', async (t) => {
  // The app trickles three lines 5 ms apart, then ends (tailLines=3). client-node pipes the
  // body into `out` without an error listener, so the test lets the server end the stream
  // rather than aborting it (an abort would surface as an uncaught error inside client-node).
  const { tunnel, app } = await setup(t);
  const out = new PassThrough();
  let text = '';
  out.setEncoding('utf8').on('data', (d: string) => {
    text += d;
  });
  await new Log(tunnel.kubeConfig()).log('default', 'p0', '', out, { follow: true, tailLines: 3 });
  await until(() => text === 'line 1\nline 2\nline 3\n', 'three log lines');
  assert.match(app.seen.at(-1)?.url ?? '', /\/log\?.*follow=true/);
});

test('Exec through kubeConfig() runs over a WebSocket on a tunnel stream and reports the status', async (t) => {
  const { tunnel, app } = await setup(t);
  const stdout = new PassThrough();
  let text = '';
  stdout.setEncoding('utf8').on('data', (d: string) => {
    text += d;
  });
  const status = await new Promise<V1Status>((resolve, reject) => {
    new Exec(tunnel.kubeConfig()).exec('default', 'p0', 'app', ['echo', 'hi'], stdout, null, null, false, resolve).catch(reject);
  });
  assert.equal(status.status, 'Success');
  await until(() => text === 'ran: echo hi\n', 'the command output');
  const upgrade = app.seen.find((s) => s.url.includes('/exec'));
  assert.ok(upgrade, 'the exec upgrade reached the app');
  assert.equal(upgrade.headers.upgrade?.toLowerCase(), 'websocket');
  assert.match(String(upgrade.headers['sec-websocket-protocol']), /v\d\.channel\.k8s\.io/);
});
