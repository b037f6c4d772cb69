import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { once } from 'node:events';
import { connectFakeAgent, dialAgentSocket } from './helpers/fake-agent.ts';
import { T, startGateway } from './helpers/gateway.ts';

async function refusal(p: Promise<unknown>): Promise<{ status: number; body: { error: { code: string } } }> {
  try {
    await p;
  } catch (err) {
    const e = err as { status?: number; body?: string };
    assert.ok(e.status !== undefined, `expected an HTTP refusal, got ${String(err)}`);
    return { status: e.status, body: JSON.parse(e.body ?? '{}') as { error: { code: string } } };
  }
  assert.fail('the upgrade was accepted');
}

test('an agent with a bad token is refused with 401 before any upgrade', async (t) => {
  const gw = await startGateway(t);
  let upgrades = 0;
  gw.gateway.server.prependListener('upgrade', () => {
    upgrades++;
  });
  const r = await refusal(dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token: 'not-a-real-token' }));
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'PT_ERR_AUTH_REJECTED');
  assert.equal(upgrades, 1, 'the request reached the upgrade handler');
  assert.equal(gw.gateway.clusters().length, 0);
});

test('an agent without any Authorization header is refused with 401', async (t) => {
  const gw = await startGateway(t);
  const r = await refusal(dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca }));
  assert.equal(r.status, 401);
});

test('a runner or admin token is not an agent token', async (t) => {
  const gw = await startGateway(t);
  for (const token of [T.runnerAll, T.admin]) {
    const r = await refusal(dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token }));
    assert.equal(r.status, 401);
  }
});

test('a good token with the wrong subprotocol is refused with 400', async (t) => {
  const gw = await startGateway(t);
  const r = await refusal(dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, subprotocol: 'something.v9' }));
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, 'PT_ERR_BAD_REQUEST');
});

test('an agent whose cluster header names another cluster than its token is refused with 403', async (t) => {
  const gw = await startGateway(t);
  const r = await refusal(dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, cluster: 'c2' }));
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, 'PT_ERR_FORBIDDEN');
});

test('a WebSocket upgrade on an unknown path is refused with 404 and plain requests get a JSON 404', async (t) => {
  const gw = await startGateway(t);
  const socket = tlsConnect({ host: '127.0.0.1', port: gw.address.port, ca: gw.ca, servername: 'localhost' });
  t.after(() => {
    socket.destroy();
  });
  await once(socket, 'secureConnect');
  socket.write(
    'GET /elsewhere HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await once(socket, 'end');
  assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 404 /);

  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    request(`${gw.httpsUrl}/nothing-here`, { ca: gw.ca }, resolve).on('error', reject).end();
  });
  res.resume();
  assert.equal(res.statusCode, 404);
  assert.equal(res.headers['content-type'], 'application/json');
});

test('tokens and Authorization headers never reach the log, on refused or successful handshakes', async (t) => {
  const gw = await startGateway(t);
  await refusal(dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token: 'wrong-secret-token-xyz' }));
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1, cluster: 'c1' });
  assert.equal(agent.welcome?.type, 'welcome');
  const records = gw.log.records();
  assert.ok(
    records.some((r) => r.event === 'agent_refused' && r.status === 401),
    'the refusal was logged',
  );
  assert.ok(
    records.some((r) => r.event === 'agent_connected' && r.cluster === 'c1'),
    'the connection was logged',
  );
  const all = gw.log.lines.join('');
  for (const secret of ['wrong-secret-token-xyz', T.agentC1, 'Bearer']) {
    assert.equal(all.includes(secret), false, `log contains ${secret}`);
  }
  assert.equal(/authorization/i.test(all), false, 'log mentions the Authorization header');
});
