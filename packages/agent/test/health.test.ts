import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { startFakeGateway } from './helpers/fake-gateway.ts';
import { nextConnected, readAll, startAgent } from './helpers/agent.ts';

const token = 'agent-secret-token-0123456789';

async function get(port: number, path: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

test('/health is 200, /ready follows the tunnel, /metrics serves the registry, others 404', async (t) => {
  const gw = await startFakeGateway({ token, unavailable: true });
  t.after(() => gw.close());
  let apiOk: boolean | string = true;
  const { agent } = await startAgent(t, {
    apiUrl: gw.url,
    token,
    allowInsecureTransport: true,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 20, maxIntervalMs: 50, probeIntervalMs: 250, stableAfterMs: 10_000 },
    readinessChecks: [{ name: 'apiServer', check: () => apiOk }],
  });
  const hp = agent.healthAddress?.port;
  assert.ok(hp !== undefined && hp > 0);
  assert.deepEqual(JSON.parse((await get(hp, '/health')).body), { status: 'ok' });
  const notReady = await get(hp, '/ready');
  assert.equal(notReady.status, 503);
  assert.equal(JSON.parse(notReady.body).ready, false);
  assert.match(JSON.parse(notReady.body).reason, /^tunnel (connecting|backoff)$/);

  const connected = nextConnected(agent);
  gw.available();
  await connected;
  const ready = await get(hp, '/ready');
  assert.equal(ready.status, 200);
  assert.deepEqual(JSON.parse(ready.body), { ready: true });
  apiOk = 'no answer since 30 s';
  assert.deepEqual(JSON.parse((await get(hp, '/ready')).body), { ready: false, reason: 'apiServer: no answer since 30 s' });

  const s = gw.openStream({ kind: 'ping', requestId: 'm1' });
  s.end('x'.repeat(1000));
  await readAll(s);
  const metrics = await get(hp, '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.type ?? '', /text\/plain/);
  for (const re of [
    /pipeops_tunnel_connection_state\{state="connected"\} 1/,
    /pipeops_tunnel_connection_state\{state="backoff"\} 0/,
    /pipeops_tunnel_connects_total 1/,
    /pipeops_tunnel_streams_total\{kind="ping",result="ok"\} 1/,
    /pipeops_tunnel_streams_active\{kind="ping"\} 0/,
    /pipeops_tunnel_bytes_total\{direction="in"\} [1-9]\d{3,}/,
    /pipeops_tunnel_frames_total\{direction="out"\} [1-9]/,
    /pipeops_tunnel_resets_total\{direction="in"\} 0/,
    /process_cpu_user_seconds_total/,
  ])
    assert.match(metrics.body, re);
  assert.equal((await get(hp, '/nope')).status, 404);
});

test('a graceful close lets an in-flight ping stream finish, then resolves done', async (t) => {
  const gw = await startFakeGateway({ token });
  t.after(() => gw.close());
  const { agent } = await startAgent(t, { apiUrl: gw.url, token, allowInsecureTransport: true });
  await nextConnected(agent);
  const s = gw.openStream({ kind: 'ping', requestId: 'inflight' });
  s.write('first half ');
  await once(s, 'readable');
  const closing = agent.close(5_000);
  // The stream is still open while the agent drains: finish it now.
  s.end('second half');
  const echoed = (await readAll(s)).toString();
  assert.equal(echoed, 'first half second half');
  await closing;
  await agent.done;
  assert.equal(agent.state, 'closed');
  await agent.close(); // idempotent
  await assert.rejects(fetch(`http://127.0.0.1:${agent.healthAddress?.port ?? 1}/health`));
});

test('the token never reaches a log line across a connect, a reconnect and a 401', async (t) => {
  const gw = await startFakeGateway({ token });
  t.after(() => gw.close());
  const { agent, logs } = await startAgent(t, { apiUrl: gw.url, token, allowInsecureTransport: true });
  await nextConnected(agent);
  const again = nextConnected(agent);
  gw.askReconnect();
  await again;
  const refused = await startAgent(t, { apiUrl: gw.url, token: 'wrong-token-abcdefghijkl', allowInsecureTransport: true });
  await assert.rejects(refused.agent.done);
  assert.ok(logs.lines.length > 5);
  for (const line of [...logs.lines, ...refused.logs.lines]) {
    assert.ok(!line.includes(token) && !line.includes('wrong-token-abcdefghijkl'), line);
    assert.ok(!/bearer/i.test(line), line);
  }
});
