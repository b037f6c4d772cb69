// Regression tests for unauthenticated connections that were never closed:
// TCP connections that never finish their TLS handshake, and slowloris
// request heads, were all still open 126 s later (the 'tlsClientError'
// listener only logged, which suppresses Node's destroy; 'clientError' only
// half-closed). Deadlines here are small so the server's closes are events
// the tests wait for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:https';
import { connectFakeAgent, pingEcho } from './helpers/fake-agent.ts';
import { T, startGateway, waitFor } from './helpers/gateway.ts';
import {
  connectHttpAgent,
  connections,
  httpsGet,
  silentTcp,
  silentTls,
  slowloris,
  tricklingTlsHello,
  until,
  type HostileConnection,
} from './hostile-helpers.ts';

const N = 25;
const DEADLINE_MS = 300;

async function allEndedByServer(conns: HostileConnection[]): Promise<void> {
  await Promise.all(conns.map((c) => c.ended));
}

test('TCP connections that never finish the TLS handshake are closed by the server after tlsHandshakeTimeoutMs, silent or trickling', {
  timeout: 30_000,
}, async (t) => {
  const gw = await startGateway(t, { tlsHandshakeTimeoutMs: DEADLINE_MS, requestHeadTimeoutMs: 60_000 });
  const started = performance.now();
  const conns = await Promise.all([
    ...Array.from({ length: N }, () => silentTcp(t, gw.address.port)),
    ...Array.from({ length: N }, () => tricklingTlsHello(t, gw.address.port, 50)),
  ]);
  // A normal client is served meanwhile.
  assert.equal((await httpsGet(`${gw.httpsUrl}/health`, gw.ca)).status, 200);
  await allEndedByServer(conns);
  const ms = performance.now() - started;
  assert.ok(ms >= DEADLINE_MS - 50, `not closed before the deadline (${Math.round(ms)} ms)`);
  for (const c of conns) assert.equal(c.received(), '', 'nothing but a close for a handshake that never finished');
  // The clients keep their side open: the server must have released the sockets, not just half-closed them.
  await until(async () => (await connections(gw.gateway.server)) === 0, 'the server released every socket');
  assert.equal((await httpsGet(`${gw.httpsUrl}/health`, gw.ca)).status, 200);
  const timeouts = gw.log.records().filter((r) => r.event === 'tls_client_error' && r.code === 'ERR_TLS_HANDSHAKE_TIMEOUT');
  assert.equal(timeouts.length, 2 * N, 'each one, trickling or not, ended by the handshake deadline');
});

test('request heads not complete within requestHeadTimeoutMs are answered 408 and the socket destroyed, silent or slowloris', {
  timeout: 30_000,
}, async (t) => {
  const gw = await startGateway(t, { requestHeadTimeoutMs: DEADLINE_MS });
  const conns = await Promise.all([
    ...Array.from({ length: N }, () => silentTls(t, gw.address.port, gw.ca)),
    ...Array.from({ length: N }, () => slowloris(t, gw.address.port, gw.ca, 50)),
  ]);
  assert.equal((await httpsGet(`${gw.httpsUrl}/health`, gw.ca)).status, 200);
  await allEndedByServer(conns);
  for (const c of conns) assert.match(c.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
  // The clients keep their side open: the server must have released the sockets, not just half-closed them.
  await until(async () => (await connections(gw.gateway.server)) === 0, 'the server released every socket');
  assert.equal((await httpsGet(`${gw.httpsUrl}/health`, gw.ca)).status, 200);
  const records = gw.log.records().filter((r) => r.event === 'client_error');
  assert.ok(records.length >= 2 * N, 'each late head is logged');
  assert.ok(records.every((r) => r.status === 408 && r.code === 'ERR_HTTP_REQUEST_TIMEOUT'));
});

test('a malformed request head is answered 400 and the socket destroyed, not left half-open', { timeout: 30_000 }, async (t) => {
  const gw = await startGateway(t);
  const conn = await silentTls(t, gw.address.port, gw.ca);
  conn.socket.write('NOT AN HTTP REQUEST\r\n\r\n');
  await conn.ended;
  assert.match(conn.received(), /^HTTP\/1\.1 400 Bad Request\r\n/);
  await until(async () => (await connections(gw.gateway.server)) === 0, 'the server released the socket');
});

test('the head deadline cuts neither a long response nor an upgraded session: a WATCH-like response and an agent tunnel outlive it', {
  timeout: 30_000,
}, async (t) => {
  const gw = await startGateway(t, { requestHeadTimeoutMs: DEADLINE_MS });
  let watch: ServerResponse | undefined;
  const watching = new Promise<void>((resolve) => {
    void connectHttpAgent(t, gw, T.agentC1, (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/json;stream=watch' });
      res.write('{"type":"ADDED"}\n');
      watch = res;
      resolve();
    });
  });
  await waitFor(() => gw.gateway.clusters().some((c) => c.cluster === 'c1'), 10_000, 'agent c1');
  const pinger = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2 });
  const chunks: string[] = [];
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    request(`${gw.httpsUrl}/k8s/clusters/c1/api/v1/pods?watch=true`, { ca: gw.ca, agent: false, headers: { authorization: `Bearer ${T.runnerC1}` } }, resolve)
      .on('error', reject)
      .end();
  });
  res.setEncoding('utf8').on('data', (d: string) => chunks.push(d));
  await watching;
  assert.equal(res.statusCode, 200);
  // A clock made of events: slowloris connections opened now are closed by the deadline.
  const late = await Promise.all(Array.from({ length: 3 }, () => slowloris(t, gw.address.port, gw.ca, 50)));
  await allEndedByServer(late);
  assert.equal(res.destroyed, false, 'the WATCH response is still open past the head deadline');
  watch!.end('{"type":"DELETED"}\n');
  await once(res, 'end');
  assert.equal(chunks.join(''), '{"type":"ADDED"}\n{"type":"DELETED"}\n');
  const stream = await gw.gateway.openStream('c2', { kind: 'ping', requestId: 'after-deadline' });
  assert.equal((await pingEcho(stream, Buffer.from('still here'))).toString(), 'still here', 'the agent tunnel outlived the deadline');
  assert.equal(pinger.ws.readyState, pinger.ws.OPEN);
});

test('beyond maxConnections new connections are closed at once, and a freed slot serves again', { timeout: 30_000 }, async (t) => {
  const gw = await startGateway(t, { maxConnections: 3 });
  const held = await Promise.all(Array.from({ length: 3 }, () => silentTls(t, gw.address.port, gw.ca)));
  await until(async () => (await connections(gw.gateway.server)) === 3, 'three connections accepted');
  const refused = await Promise.all(Array.from({ length: 5 }, () => silentTcp(t, gw.address.port)));
  await allEndedByServer(refused);
  for (const c of refused) assert.equal(c.received(), '');
  for (const c of held) assert.equal(c.socket.destroyed, false, 'the connections within the cap stay open');
  const drop = gw.log.records().find((r) => r.event === 'connection_dropped');
  assert.ok(drop, 'the drop is logged');
  assert.equal(drop.maxConnections, 3);
  held[0]!.socket.destroy();
  await until(async () => (await connections(gw.gateway.server)) === 2, 'a slot freed');
  assert.equal((await httpsGet(`${gw.httpsUrl}/health`, gw.ca)).status, 200);
});
