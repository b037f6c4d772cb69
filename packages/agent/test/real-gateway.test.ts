import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { TunnelError } from '@pipeops/tunnel-protocol';
import { startGateway } from './helpers/gateway.ts';
import { testCerts } from './helpers/certs.ts';
import { nextConnected, readAll, startAgent, tempFile, waitFor } from './helpers/agent.ts';

const token = 'agent-secret-token-0123456789';

test('against the real gateway: the agent connects over TLS and echoes a ping stream', async (t) => {
  const gw = await startGateway(t, { token });
  const registered = once(gw.gateway, 'agent-connected');
  const { agent } = await startAgent(t, { apiUrl: gw.url, token, tls: { insecureSkipVerify: false, caFile: tempFile(t, 'ca.pem', testCerts().caCert) } });
  await nextConnected(agent);
  const [cluster] = (await registered) as [string];
  assert.equal(cluster, 'c1');
  const s = await gw.gateway.openStream('c1', { kind: 'ping', requestId: 'real-1' });
  s.end('hello through the tunnel');
  assert.equal((await readAll(s)).toString(), 'hello through the tunnel');
});

test('against the real gateway: a wrong token is refused once and ends the agent with PT_ERR_AUTH_REJECTED', async (t) => {
  const gw = await startGateway(t, { token });
  const { agent, registry } = await startAgent(t, { apiUrl: gw.url, token: 'not-the-agent-token-xyz', tls: { insecureSkipVerify: true } });
  await assert.rejects(agent.done, (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_AUTH_REJECTED' && e.status === 401);
  // Exactly one dial: the gateway counted one refusal, the agent one failure.
  const gatewayFailures = (await gw.registry.metrics()).match(/^pipeops_tunnel_connect_failures_total\{[^}]*\} (\d+)$/gm) ?? [];
  assert.equal(
    gatewayFailures.reduce((n, line) => n + Number(line.split(' ').at(-1)), 0),
    1,
    gatewayFailures.join('\n'),
  );
  // Every reason is exported from the start (at 0); only auth counted one.
  const agentFailures = (await registry.metrics()).match(/^pipeops_tunnel_connect_failures_total\{[^}]*\} [1-9]\d*$/gm) ?? [];
  assert.deepEqual(agentFailures, ['pipeops_tunnel_connect_failures_total{reason="auth"} 1']);
});

test('against the real gateway: a gateway closed and restarted on the same port gets the agent back within 2 s', async (t) => {
  const gw = await startGateway(t, { token });
  const { agent, logs } = await startAgent(t, {
    apiUrl: gw.url,
    token,
    tls: { insecureSkipVerify: true },
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 5_000, maxIntervalMs: 30_000 },
  });
  await nextConnected(agent);
  const gone = once(agent, 'disconnected');
  await gw.gateway.close(500);
  await gone;
  // The agent must have seen the port gone (a refused dial, or a probe while it waits: its redial may
  // instead meet the draining gateway's 503) before the new gateway listens.
  await waitFor(
    () =>
      agent.state === 'backoff' &&
      logs.records().some((r) => r.event === 'gateway_port_refusing' || (r.msg === 'tunnel dial failed' && r.reason === 'network')),
    5_000,
    'the port seen refusing',
  );
  const back = nextConnected(agent);
  const gw2 = await startGateway(t, { token, port: gw.port });
  const listeningAt = performance.now();
  await back;
  const ms = performance.now() - listeningAt;
  assert.ok(ms < 2_000, `reconnected ${Math.round(ms)} ms after the gateway listened\n${logs.lines.join('\n')}`);
  const s = await gw2.gateway.openStream('c1', { kind: 'ping', requestId: 'after-restart' });
  s.end('again');
  assert.equal((await readAll(s)).toString(), 'again');
});
