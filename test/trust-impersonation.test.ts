// Issue 9, finding 1: a runner never chooses its identity at the API server.
// Every `Impersonate-*` header — any case, repeated, announced as a trailer
// or sent as one — gets a 403 Status on every runner path and never reaches
// the API server; the gateway's and the agent's audit records say why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { fetch, request } from 'undici';
import { WebSocket } from 'ws';
import { connect } from '@pipeops/tunnel-client';
import { waitFor } from '@pipeops/tunnel-testkit';
import { CLUSTER, RUNNER_TOKEN, startK8sPath, type K8sPath, rawExchange } from './k8s-harness.ts';

const PODS = '/api/v1/namespaces/default/pods';

/** The header variants a runner might try. */
const FORGED: Array<[string, string]> = [
  ['Impersonate-User', 'jane'],
  ['impersonate-group', 'system:masters'],
  ['IMPERSONATE-UID', '42'],
  ['Impersonate-Extra-Scopes', 'view'],
];

function noImpersonationReachedTheApiServer(p: K8sPath): void {
  const leaked = p.fake.requests.filter((r) => Object.keys(r.headers).some((h) => h.startsWith('impersonate-')));
  assert.deepEqual(
    leaked.map((r) => r.path),
    [],
    'an impersonation header reached the API server',
  );
}

function assertForbiddenStatus(status: number, body: string, header: string): void {
  assert.equal(status, 403, body.slice(0, 300));
  const s = JSON.parse(body) as { kind: string; reason: string; code: number; message: string };
  assert.equal(s.kind, 'Status');
  assert.equal(s.reason, 'Forbidden');
  assert.equal(s.code, 403);
  assert.ok(s.message.includes(header), `the message names ${header}: ${s.message}`);
}

test('every impersonation header on /k8s/clusters is refused with 403 and never reaches the API server', async (t) => {
  const p = await startK8sPath(t);
  for (const [name, value] of FORGED) {
    const res = await request(`${p.base}${PODS}`, { dispatcher: p.dispatcher, headers: { ...p.auth, [name]: value } });
    assertForbiddenStatus(res.statusCode, await res.body.text(), name);
  }
  // Split across repeated headers: the second of two Impersonate-Group lines counts as much as the first.
  const repeated = await request(`${p.base}${PODS}`, {
    dispatcher: p.dispatcher,
    headers: [
      ['authorization', `Bearer ${RUNNER_TOKEN}`],
      ['Impersonate-Group', 'a'],
      ['Impersonate-Group', 'system:masters'],
    ].flat(),
  });
  assertForbiddenStatus(repeated.statusCode, await repeated.body.text(), 'Impersonate-Group');
  // An exec upgrade carries it too.
  const socket = tlsConnect({ host: '127.0.0.1', port: p.gatewayPort, ca: p.gatewayCa });
  await once(socket, 'secureConnect');
  const upgrade = await rawExchange(
    socket,
    `POST /k8s/clusters/c1${PODS}/web-0/exec?command=sh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${RUNNER_TOKEN}\r\n` +
      'Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nImpersonate-User: admin\r\nContent-Length: 0\r\n\r\n',
  );
  assertForbiddenStatus(upgrade.status, upgrade.body, 'Impersonate-User');
  noImpersonationReachedTheApiServer(p);
  const denied = p.gatewayLogs.records.filter((r) => r.event === 'audit' && r.decision === 'denied' && r.rule === 'impersonation');
  assert.equal(denied.length, FORGED.length + 2, 'one denied audit record per refused request');
  assert.ok(denied.every((r) => r.runnerId === 'r1' && r.status === 403 && r.resource === 'pods'));
  // The same request without the header works: the refusal is about the header, nothing else.
  const ok = await request(`${p.base}${PODS}`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(ok.statusCode, 200);
  await ok.body.dump();
});

test('impersonation headers through @pipeops/tunnel-client (/ws/runner) and its local proxy are refused with 403', async (t) => {
  const p = await startK8sPath(t);
  const tunnel = await connect({ gatewayUrl: `https://127.0.0.1:${p.gatewayPort}`, token: RUNNER_TOKEN, cluster: CLUSTER, ca: p.gatewayCa });
  t.after(() => tunnel.close());
  for (const [name, value] of FORGED) {
    const res = await fetch(`${tunnel.baseUrl}${PODS}`, { dispatcher: tunnel.dispatcher, headers: { [name]: value } });
    assertForbiddenStatus(res.status, await res.text(), name);
  }
  assert.equal(p.gatewayLogs.records.filter((r) => r.event === 'audit' && r.route === 'ws-runner' && r.rule === 'impersonation').length, FORGED.length);
  const proxy = await tunnel.listen({ port: 0 });
  t.after(() => proxy.close());
  const viaProxy = await request(`${proxy.url}${PODS}`, { headers: { 'Impersonate-User': 'jane' } });
  assertForbiddenStatus(viaProxy.statusCode, await viaProxy.body.text(), 'Impersonate-User');
  noImpersonationReachedTheApiServer(p);
});

test('impersonation headers in a /ws/k8s JSON request are answered 403 for that id, and the socket keeps working', async (t) => {
  const p = await startK8sPath(t);
  const ws = new WebSocket(`wss://127.0.0.1:${p.gatewayPort}/ws/k8s?cluster=${CLUSTER}`, { ca: p.gatewayCa, headers: p.auth });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  const replies = new Map<string, { status?: number; body?: unknown }>();
  ws.on('message', (m: Buffer) => {
    const r = JSON.parse(m.toString()) as { id: string; status?: number; body?: unknown };
    replies.set(r.id, r);
  });
  ws.send(JSON.stringify({ id: 'forged', method: 'GET', path: PODS, headers: { 'Impersonate-Group': 'system:masters' } }));
  ws.send(JSON.stringify({ id: 'plain', method: 'GET', path: PODS }));
  const deadline = Date.now() + 10_000;
  while ((!replies.has('forged') || !replies.has('plain')) && Date.now() < deadline) await once(ws, 'message');
  const forged = replies.get('forged');
  assert.equal(forged?.status, 403);
  assert.match(JSON.stringify(forged?.body), /impersonate-group/i);
  assert.equal(replies.get('plain')?.status, 200);
  noImpersonationReachedTheApiServer(p);
  await waitFor(() => p.gatewayLogs.records.some((r) => r.event === 'audit' && r.route === 'ws-k8s' && r.decision === 'denied' && r.rule === 'impersonation'), {
    what: "the gateway's audit record of the agent's refusal",
  });
});

test('on a raw agent stream the agent itself refuses impersonation headers, announced trailers and trailers, before the API server', async (t) => {
  const p = await startK8sPath(t);
  const viaAgent = async (id: string, text: string): Promise<{ status: number; body: string }> => {
    const stream = await p.gateway.openStream('c1', { kind: 'http', requestId: id, runnerId: 'r1', cluster: 'c1' });
    return rawExchange(stream, text);
  };
  const head = await viaAgent('raw-head', `GET ${PODS} HTTP/1.1\r\nHost: x\r\nimPersonate-uSer: jane\r\nConnection: close\r\n\r\n`);
  assertForbiddenStatus(head.status, head.body, 'imPersonate-uSer');
  const announced = await viaAgent(
    'raw-announced',
    `POST /sink HTTP/1.1\r\nHost: x\r\nTrailer: Impersonate-Group\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nImpersonate-Group: system:masters\r\n\r\n`,
  );
  assertForbiddenStatus(announced.status, announced.body, 'Impersonate-Group');
  const sinkCalls = (): number => p.fake.requests.filter((r) => r.path === '/sink').length;
  const before = sinkCalls();
  const trailer = await viaAgent(
    'raw-trailer',
    `POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nImpersonate-User: jane\r\n\r\n`,
  );
  assertForbiddenStatus(trailer.status, trailer.body, 'Impersonate-User');
  // The upload may have started upstream, but it was aborted before its end: the API server never got a whole request.
  for (const r of p.fake.requests.filter((x) => x.path === '/sink').slice(before)) await p.fake.aborted.wait((a) => a.seq === r.seq);
  noImpersonationReachedTheApiServer(p);
  const denied = p.agentLogs.records.filter((r) => r.event === 'audit' && r.side === 'agent' && r.rule === 'impersonation');
  assert.deepEqual(denied.map((r) => r.requestId).sort(), ['raw-announced', 'raw-head', 'raw-trailer']);
  assert.equal((await p.agentRegistry.getSingleMetricAsString('pipeops_tunnel_policy_denied_total')).match(/rule="impersonation"} (\d+)/)?.[1], '3');
});
