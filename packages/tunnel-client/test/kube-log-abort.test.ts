// Aborting client-node's `Log` follow through tunnel.kubeConfig().
//
// client-node 2.0.1 (dist/log.js) does `Readable.fromWeb(response.body).pipe(stream)`
// and gives that Readable no 'error' listener; undici's fetch errors the body
// with an AbortError itself when the AbortController that Log returns is
// aborted, whatever the dispatcher does (the same crash happens with a plain
// KubeConfig and no tunnel). So no transport can end that body cleanly: the
// README ("Aborting a Log follow") documents the guard this test uses — an
// 'error' listener added to the source that `pipe()` announces on the
// destination's 'pipe' event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, type Readable } from 'node:stream';
import { Log } from '@kubernetes/client-node';
import { waitFor } from '@pipeops/tunnel-testkit';
import { connect } from '../src/index.ts';
import { CLUSTER, RUNNER_TOKEN, startRealPath } from './helpers/real-path.ts';

test('aborting a Log follow with the documented guard leaves the process running and aborts the request upstream', async (t) => {
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => {
    uncaught.push(err);
  };
  process.on('uncaughtException', onUncaught);
  t.after(() => {
    process.off('uncaughtException', onUncaught);
  });

  const path = await startRealPath(t);
  const tunnel = await connect({ gatewayUrl: path.gatewayUrl, token: RUNNER_TOKEN, cluster: CLUSTER, ca: path.gatewayCa });
  t.after(() => tunnel.close());

  const out = new PassThrough();
  let text = '';
  out.setEncoding('utf8').on('data', (d: string) => {
    text += d;
  });
  const bodyErrors: Error[] = [];
  // The guard: client-node pipes its body into `out`; keep the abort that errors that body from being uncaught.
  out.on('pipe', (src: Readable) => {
    src.on('error', (err: Error) => bodyErrors.push(err));
  });

  const controller = await new Log(tunnel.kubeConfig()).log('default', 'web-0', 'app', out, { follow: true });
  await path.fake.logs.waitForFollowers(1);
  path.fake.logs.write('before the abort');
  await waitFor(() => text === 'before the abort\n', { what: 'the first log line' });

  controller.abort();
  const aborted = await path.fake.aborted.wait((r) => r.path.startsWith('/api/v1/namespaces/default/pods/web-0/log?'));
  assert.match(aborted.path, /follow=true/);
  assert.equal(path.fake.logs.active, 0);
  await waitFor(() => bodyErrors.length === 1, { what: 'the guard to see the aborted body' });
  assert.equal(bodyErrors[0]?.name, 'AbortError');
  assert.deepEqual(uncaught, [], 'nothing escaped to the process');

  // The tunnel is still in service after the abort.
  const r = await tunnel.request({ method: 'GET', path: '/version' });
  assert.equal(r.status, 200);
});
