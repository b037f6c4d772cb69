// WATCH and `logs -f` that survive a tunnel drop, end to end: tunnel-client →
// real gateway → real agent → the testkit's fake API server (whose watch
// honours resourceVersion, bookmarks and compaction, and whose followed log
// honours timestamps and sinceTime). The tunnel is cut by stopping the
// gateway and starting a new one on the same port; changes are made while it
// is down; the caller must see every one exactly once, in order.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Watch } from '@kubernetes/client-node';
import { request } from 'undici';
import { collectLogs, kubeconfigFor, spawnLogged, waitFor, type LogCollector } from '@pipeops/tunnel-testkit';
import { connect, type ConnectOptions, type Tunnel } from '../src/index.ts';
import { CLUSTER, RUNNER_TOKEN, startRealPath, type RealPath } from './helpers/real-path.ts';

const PODS = '/api/v1/namespaces/default/pods';

async function tunnelTo(t: TestContext, path: RealPath, extra: Partial<ConnectOptions> = {}): Promise<{ tunnel: Tunnel; logs: LogCollector }> {
  const logs = collectLogs();
  const tunnel = await connect({
    gatewayUrl: path.gatewayUrl,
    token: RUNNER_TOKEN,
    cluster: CLUSTER,
    ca: path.gatewayCa,
    reconnect: { intervalMs: 50, maxIntervalMs: 200 },
    logger: logs.logger('debug'),
    ...extra,
  });
  t.after(() => tunnel.close());
  return { tunnel, logs };
}

/** Stops the gateway (the tunnel drops: its streams are cut), runs `during`, starts a new gateway on the same port. */
async function outage(path: RealPath, tunnel: Tunnel, during: () => void | Promise<void>): Promise<void> {
  const lost = once(tunnel, 'disconnected');
  await path.stopGateway();
  await lost;
  await during();
  await path.startGateway();
}

const pod = (name: string) => ({ kind: 'Pod', apiVersion: 'v1', metadata: { name, namespace: 'default' } });

describe('a WATCH cut by a tunnel drop goes on from the last resourceVersion', () => {
  test('watch(): every change before, during and after the outage exactly once, in order; unasked-for bookmarks left out', async (t) => {
    const path = await startRealPath(t);
    const { tunnel, logs } = await tunnelTo(t, path);
    const seen: string[] = [];
    const ac = new AbortController();
    t.after(() => ac.abort());
    const iter = tunnel.watch<{ metadata: { name?: string; resourceVersion: string } }>(PODS, {
      resourceVersion: path.fake.watch.resourceVersion,
      signal: ac.signal,
    });
    const consumed = (async () => {
      for await (const ev of iter) seen.push(`${ev.type}:${ev.object.metadata.name ?? ''}@${ev.object.metadata.resourceVersion}`);
    })();
    await path.fake.watch.waitForWatchers(1);
    const first = path.fake.watch.change(pod('before-1'));
    path.fake.watch.change(pod('before-2'), 'MODIFIED');
    assert.equal(path.fake.watch.bookmark(), 1, 'the watch asked for bookmarks (added by the resume layer)');
    await waitFor(() => seen.length === 2, { what: 'the events before the outage' });

    await outage(path, tunnel, () => {
      path.fake.watch.change(pod('during-1'));
      path.fake.watch.change(pod('during-2'), 'DELETED');
    });
    await waitFor(() => seen.length === 4, { timeoutMs: 15_000, what: 'the events of the outage, after the resume' });
    await path.fake.watch.waitForWatchers(1);
    path.fake.watch.change(pod('after-1'));
    await waitFor(() => seen.length === 5, { what: 'the event after the outage' });

    const rv = Number(first);
    assert.deepEqual(seen, [
      `ADDED:before-1@${rv}`,
      `MODIFIED:before-2@${rv + 1}`,
      `ADDED:during-1@${rv + 2}`,
      `DELETED:during-2@${rv + 3}`,
      `ADDED:after-1@${rv + 4}`,
    ]);
    // The bookmark after before-2 carried the same resourceVersion: the resume asked from there.
    const resumedAt = path.fake.requests.filter((r) => r.path.startsWith(`${PODS}?`)).map((r) => new URL(r.path, 'http://x').searchParams);
    assert.equal(resumedAt[0]?.get('allowWatchBookmarks'), 'true');
    assert.equal(resumedAt.at(-1)?.get('resourceVersion'), String(rv + 1));
    const resumed = logs.find((r) => r.event === 'watch_resumed');
    assert.ok(resumed, 'a watch_resumed record');
    assert.equal(resumed.resourceVersion, String(rv + 1));
    assert.equal(resumed.path, PODS);
    assert.ok(logs.find((r) => r.event === 'watch_interrupted'));
    ac.abort();
    await consumed.catch(() => {});
  });

  test('client-node Watch through kubeConfig(): the callback sees every change once, done() is not called', async (t) => {
    const path = await startRealPath(t);
    const { tunnel } = await tunnelTo(t, path);
    const seen: string[] = [];
    let done: unknown = 'not called';
    const ctl = await new Watch(tunnel.kubeConfig()).watch(
      PODS,
      { resourceVersion: path.fake.watch.resourceVersion },
      (type, obj: { metadata: { name: string } }) => {
        seen.push(`${type}:${obj.metadata.name}`);
      },
      (err) => {
        done = err;
      },
    );
    t.after(() => ctl.abort());
    await path.fake.watch.waitForWatchers(1);
    path.fake.watch.change(pod('cn-1'));
    await waitFor(() => seen.length === 1, { what: 'the first event' });
    await outage(path, tunnel, () => {
      path.fake.watch.change(pod('cn-2'));
      path.fake.watch.change(pod('cn-3'), 'MODIFIED');
    });
    await waitFor(() => seen.length === 3, { timeoutMs: 15_000, what: 'the outage events' });
    await path.fake.watch.waitForWatchers(1);
    path.fake.watch.change(pod('cn-4'), 'DELETED');
    await waitFor(() => seen.length === 4, { what: 'the last event' });
    assert.deepEqual(seen, ['ADDED:cn-1', 'ADDED:cn-2', 'MODIFIED:cn-3', 'DELETED:cn-4']);
    assert.equal(done, 'not called');
  });

  test('kubectl get -w through listen() keeps running across a gateway restart, each pod printed once', async (t) => {
    const path = await startRealPath(t);
    const { tunnel, logs } = await tunnelTo(t, path);
    const proxy = await tunnel.listen();
    const kubeconfig = join(path.dir, 'proxy.kubeconfig');
    writeFileSync(kubeconfig, kubeconfigFor({ server: proxy.url, namespace: 'default' }), { mode: 0o600 });
    const k = spawnLogged('/usr/bin/kubectl', ['--kubeconfig', kubeconfig, 'get', 'pods', '-w', '-o', 'name']);
    t.after(() => k.child.kill('SIGKILL'));
    const printed = (name: string) =>
      k
        .output()
        .split('\n')
        .filter((l) => l.trim() === `pod/${name}`).length;
    await waitFor(() => printed('web-0') === 1, { timeoutMs: 10_000, what: 'the listed pods' });
    await path.fake.watch.waitForWatchers(1);
    const watchReq = path.fake.requests.findLast((r) => r.path.includes('watch=') || r.path.includes('watch&'));
    path.fake.watch.change(pod('kw-before'));
    await waitFor(() => printed('kw-before') === 1, { what: 'kw-before' });
    await outage(path, tunnel, () => {
      path.fake.watch.change(pod('kw-during-1'));
      path.fake.watch.change(pod('kw-during-2'));
    });
    await waitFor(() => printed('kw-during-2') === 1, { timeoutMs: 15_000, what: 'the outage events in kubectl' });
    await path.fake.watch.waitForWatchers(1);
    path.fake.watch.change(pod('kw-after'));
    await waitFor(() => printed('kw-after') === 1, { what: 'kw-after' });
    assert.equal(k.child.exitCode, null, `kubectl is still running: ${k.output()}`);
    for (const name of ['web-0', 'web-1', 'worker-0', 'kw-before', 'kw-during-1', 'kw-during-2', 'kw-after'])
      assert.equal(printed(name), 1, `${name}: ${k.output()}`);
    assert.ok(logs.find((r) => r.event === 'watch_resumed'));
    // What kubectl asks for (Table, then JSON), and that the opt-out header never reaches the API server.
    assert.match(String(watchReq?.headers.accept), /application\/json/);
    assert.ok(path.fake.requests.every((r) => r.headers['x-pipeops-resume'] === undefined));
  });

  test('a resourceVersion compacted during the outage ends the watch with the API server’s 410 as an ERROR event', async (t) => {
    for (const answer of ['event', 'status'] as const) {
      await t.test(`the API server answers the resume with ${answer === 'event' ? 'an ERROR event' : 'HTTP 410'}`, async (t) => {
        const path = await startRealPath(t);
        const { tunnel, logs } = await tunnelTo(t, path);
        const seen: Array<{ type: string; object: { code?: number; reason?: string; metadata?: { name?: string } } }> = [];
        const iter = tunnel.watch<{ code?: number; reason?: string; metadata?: { name?: string } }>(PODS, { resourceVersion: path.fake.watch.resourceVersion });
        const consumed = (async () => {
          for await (const ev of iter) seen.push(ev);
        })();
        await path.fake.watch.waitForWatchers(1);
        path.fake.watch.change(pod('x-1'));
        await waitFor(() => seen.length === 1, { what: 'the first event' });
        await outage(path, tunnel, () => {
          path.fake.watch.change(pod('x-2'));
          path.fake.watch.compact(answer);
        });
        await consumed; // the watch ends normally after the ERROR event
        assert.equal(seen.length, 2, JSON.stringify(seen));
        assert.equal(seen[1]?.type, 'ERROR');
        assert.equal(seen[1]?.object.code, 410);
        assert.equal(seen[1]?.object.reason, 'Expired');
        if (answer === 'status') assert.equal(logs.find((r) => r.event === 'watch_resume_failed')?.reason, 'expired');
      });
    }
  });

  test('opted out (watch resume: false, header x-pipeops-resume: off) the drop ends the watch with an error, as before', async (t) => {
    const path = await startRealPath(t);
    const { tunnel } = await tunnelTo(t, path);
    const iter = tunnel.watch(PODS, { resourceVersion: path.fake.watch.resourceVersion, resume: false });
    const next = iter.next();
    await path.fake.watch.waitForWatchers(1);
    path.fake.watch.change(pod('o-1'));
    assert.equal((await next).value?.type, 'ADDED');
    const failed = assert.rejects(iter.next());
    const lost = once(tunnel, 'disconnected');
    await path.stopGateway();
    await lost;
    await failed;
    const seenUpstream = path.fake.requests.filter((r) => r.path.startsWith(`${PODS}?`));
    assert.equal(seenUpstream.length, 1);
    assert.equal(seenUpstream[0]?.headers['x-pipeops-resume'], undefined, 'the header is not sent upstream');
    assert.equal(new URL(seenUpstream[0]?.path ?? '', 'http://x').searchParams.get('allowWatchBookmarks'), null, 'nothing added when opted out');
  });

  test('through listen(), a WATCH sent with x-pipeops-resume: off is relayed as before and cut with the tunnel', async (t) => {
    const path = await startRealPath(t);
    const { tunnel, logs } = await tunnelTo(t, path);
    const proxy = await tunnel.listen();
    const res = await request(`${proxy.url}${PODS}?watch=true&resourceVersion=${path.fake.watch.resourceVersion}`, { headers: { 'x-pipeops-resume': 'off' } });
    assert.equal(res.statusCode, 200);
    await path.fake.watch.waitForWatchers(1);
    const failed = assert.rejects(res.body.text());
    const lost = once(tunnel, 'disconnected');
    await path.stopGateway();
    await lost;
    await failed;
    const upstream = path.fake.requests.filter((r) => r.path.startsWith(`${PODS}?`));
    assert.equal(upstream.length, 1);
    assert.equal(upstream[0]?.headers['x-pipeops-resume'], undefined, 'the header is not sent upstream');
    assert.equal(
      logs.find((r) => r.event === 'watch_interrupted'),
      undefined,
    );
  });

  test('a WATCH started while the tunnel is down waits waitForConnectionMs as any request does, not resume.maxWaitMs: only a started stream is resumed', async (t) => {
    const path = await startRealPath(t);
    const { tunnel } = await tunnelTo(t, path, { waitForConnectionMs: 300, resume: { maxWaitMs: 30_000 } });
    const lost = once(tunnel, 'disconnected');
    await path.stopGateway();
    await lost;
    const started = Date.now();
    await assert.rejects(tunnel.watch(PODS).next(), { code: 'PT_ERR_CLIENT_DISCONNECTED' });
    const ms = Date.now() - started;
    assert.ok(ms >= 250 && ms < 5_000, `failed after ${ms} ms`);
  });

  test('past resume.maxWaitMs the caller gets the error it would have got without resuming', async (t) => {
    const path = await startRealPath(t);
    const { tunnel, logs } = await tunnelTo(t, path, { resume: { maxWaitMs: 300 } });
    const iter = tunnel.watch(PODS, { resourceVersion: path.fake.watch.resourceVersion });
    const next = iter.next();
    await path.fake.watch.waitForWatchers(1);
    path.fake.watch.change(pod('t-1'));
    await next;
    const after = iter.next();
    const lost = once(tunnel, 'disconnected');
    await path.stopGateway();
    await lost;
    const err = (await after.then(
      () => undefined,
      (e: unknown) => e,
    )) as { code?: string } | undefined;
    assert.ok(err !== undefined, 'the watch failed');
    assert.match(String(err.code), /^(PT_ERR_MUX_|UND_ERR_SOCKET)/);
    assert.equal(logs.find((r) => r.event === 'watch_resume_failed')?.reason, 'timeout');
  });
});

describe('logs -f with timestamps goes on from the last line’s timestamp', () => {
  test('lines of the same second on both sides of the cut arrive once each, in order', async (t) => {
    const path = await startRealPath(t);
    const { tunnel, logs } = await tunnelTo(t, path);
    const res = await tunnel.request({ method: 'GET', path: `${PODS}/web-0/log`, query: { follow: 'true', timestamps: 'true' }, stream: true });
    const lines: string[] = [];
    const consumed = (async () => {
      for await (const line of res) lines.push(String(line));
    })();
    t.after(() => res.cancel());
    await path.fake.logs.waitForFollowers(1);
    // Three lines in one second, two of them with the very same timestamp.
    path.fake.logs.write('one', '2030-01-01T00:00:05.100000000Z');
    path.fake.logs.write('two', '2030-01-01T00:00:05.200000000Z');
    path.fake.logs.write('two again', '2030-01-01T00:00:05.200000000Z');
    await waitFor(() => lines.length === 3, { what: 'the first lines' });
    await outage(path, tunnel, () => {
      path.fake.logs.write('three, same instant', '2030-01-01T00:00:05.200000000Z');
      path.fake.logs.write('four', '2030-01-01T00:00:06Z');
    });
    await waitFor(() => lines.length === 5, { timeoutMs: 15_000, what: 'the lines of the outage' });
    await path.fake.logs.waitForFollowers(1);
    path.fake.logs.write('five', '2030-01-01T00:00:07.5Z');
    await waitFor(() => lines.length === 6, { what: 'the last line' });
    assert.deepEqual(lines, [
      '2030-01-01T00:00:05.100000000Z one',
      '2030-01-01T00:00:05.200000000Z two',
      '2030-01-01T00:00:05.200000000Z two again',
      '2030-01-01T00:00:05.200000000Z three, same instant',
      '2030-01-01T00:00:06Z four',
      '2030-01-01T00:00:07.5Z five',
    ]);
    const resumed = path.fake.requests.filter((r) => r.path.includes('/log?')).at(-1);
    assert.equal(new URL(resumed?.path ?? '', 'http://x').searchParams.get('sinceTime'), '2030-01-01T00:00:05Z');
    assert.ok(logs.find((r) => r.event === 'logs_resumed'));
    res.cancel();
    await consumed.catch(() => {});
  });

  test('without timestamps a cut follow ends with an error, as before', async (t) => {
    const path = await startRealPath(t);
    const { tunnel } = await tunnelTo(t, path);
    const res = await tunnel.request({ method: 'GET', path: `${PODS}/web-0/log`, query: { follow: 'true' }, stream: true });
    const it = res[Symbol.asyncIterator]();
    await path.fake.logs.waitForFollowers(1);
    path.fake.logs.write('plain');
    assert.equal((await it.next()).value, 'plain');
    const failed = assert.rejects(it.next());
    const lost = once(tunnel, 'disconnected');
    await path.stopGateway();
    await lost;
    await failed;
  });
});
