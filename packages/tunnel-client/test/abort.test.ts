// A request the caller aborts once it is on its stream resets that stream,
// so the agent stops serving it: undici destroys an aborted request's socket
// with an InformationalError('aborted'), which the dispatcher used to end
// gracefully (FIN) like a finished exchange, and a WATCH then streamed on
// into a drained void (found by the listener fuzzing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Dispatcher } from 'undici';
import { activeStreams, waitFor } from '@pipeops/tunnel-testkit';
import { connect } from '../src/index.ts';
import { CLUSTER, RUNNER_TOKEN, startRealPath } from './helpers/real-path.ts';

for (const resume of [true, false]) {
  test(`a WATCH the caller aborts once the API server holds it resets its stream, and the agent stops serving it (${resume ? 'resumable' : 'x-pipeops-resume: off'})`, async (t) => {
    const path = await startRealPath(t);
    const tunnel = await connect({ gatewayUrl: path.gatewayUrl, token: RUNNER_TOKEN, cluster: CLUSTER, ca: path.gatewayCa });
    t.after(() => tunnel.close());

    let controller: Dispatcher.DispatchController | undefined;
    const outcome = new Promise<Error>((resolve) => {
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
        },
        onResponseStart(c) {
          controller = c;
        },
        onResponseData() {},
        onResponseEnd() {
          resolve(new Error('the watch ended by itself'));
        },
        onResponseError(_c, err) {
          resolve(err);
        },
      };
      tunnel.dispatcher.dispatch(
        {
          origin: tunnel.baseUrl,
          path: '/api/v1/namespaces/default/pods?watch=1',
          method: 'GET',
          headers: resume ? {} : { 'x-pipeops-resume': 'off' },
        },
        handler,
      );
    });
    // The watch is served (the API server holds it), then the caller leaves.
    await path.fake.watch.waitForWatchers(1);
    assert.ok(controller !== undefined);
    controller.abort(new Error('the runner went away'));
    assert.match((await outcome).message, /the runner went away/);
    await waitFor(async () => path.fake.watch.active === 0 && (await activeStreams(path.agentRegistry)) === 0, {
      what: 'the watch gone at the API server and the agent',
    });
  });
}
