import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import WebSocket from 'ws';
import { createSession, type Session } from '@pipeops/tunnel-mux';
import { SUBPROTOCOL, requestOverStream, websocketDuplex } from '@pipeops/tunnel-protocol';
import { FAKE_GIT_VERSION, blobSha256, blobStream, waitFor } from '@pipeops/tunnel-testkit';
import { T } from './helpers/gateway.ts';
import { startRunnerRig, status, type RunnerRig } from './runner-helpers/rig.ts';

type Dialed = { ws: WebSocket; session: Session } | { refused: number; body: unknown; upgraded: false };

/** Dials GET /ws/runner the way tunnel-client does: WSS, Bearer token, subprotocol; a mux client session on top. */
async function dialRunner(
  rig: RunnerRig,
  t: { after(fn: () => unknown): void },
  opts: { token?: string; query?: string; protocols?: string[] } = {},
): Promise<Dialed> {
  const headers: Record<string, string> = opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` };
  const ws = new WebSocket(`${rig.gw.wsUrl}/ws/runner?${opts.query ?? 'runner_id=deploy-7&cluster=c1'}`, opts.protocols ?? [SUBPROTOCOL], {
    ca: rig.gw.ca,
    headers,
    perMessageDeflate: false,
  });
  t.after(() => ws.terminate());
  return new Promise<Dialed>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += String(c);
      });
      res.on('end', () => resolve({ refused: res.statusCode ?? 0, body: JSON.parse(text) as unknown, upgraded: false }));
    });
    ws.once('open', () => {
      const session = createSession(websocketDuplex(ws), { client: true, keepAliveIntervalMs: 0 });
      t.after(() => session.destroy());
      resolve({ ws, session });
    });
    ws.once('error', reject);
  });
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function send(session: Session, method: string, path: string, body?: Readable): Promise<{ status: number; id: string; body: Buffer }> {
  const answer = await requestOverStream(session.open(), { method, path, headers: { host: 'cluster' }, body });
  assert.equal(answer.upgraded, false);
  return { status: answer.response.statusCode ?? 0, id: String(answer.response.headers['x-pipeops-request-id']), body: await readAll(answer.response) };
}

test('one runner session carries many concurrent requests: gets, a 4 MiB upload and a live WATCH', async (t) => {
  const rig = await startRunnerRig(t);
  const dialed = await dialRunner(rig, t, { token: T.runnerC1 });
  assert.ok('session' in dialed);
  const { session, ws } = dialed;
  assert.equal(ws.protocol, SUBPROTOCOL);
  const watch = await requestOverStream(session.open(), { method: 'GET', path: '/api/v1/namespaces/default/pods?watch=1', headers: { host: 'cluster' } });
  assert.equal(watch.upgraded, false);
  const size = 4 * 1024 * 1024;
  const [uploaded, ...gets] = await Promise.all([
    send(session, 'POST', '/sink', blobStream(size, 'runner-upload')),
    ...Array.from({ length: 8 }, () => send(session, 'GET', '/version')),
  ]);
  assert.equal(uploaded?.status, 200);
  assert.deepEqual(JSON.parse(String(uploaded?.body)), { bytes: size, sha256: blobSha256(size, 'runner-upload') });
  for (const g of gets) {
    assert.equal(g.status, 200);
    assert.equal((JSON.parse(String(g.body)) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  }
  assert.equal(new Set([uploaded?.id, ...gets.map((g) => g.id)]).size, 9, 'every request has its own id');
  await rig.fake.watch.waitForWatchers();
  rig.fake.watch.emit({ metadata: { name: 'while-others-ran' } });
  const [first] = (await once(watch.response, 'data')) as [Buffer];
  assert.match(String(first), /while-others-ran/);
  rig.fake.watch.end();
  await once(watch.response, 'end');
  const recs = rig.gw.log.records().filter((r) => r.event === 'audit' && r.side === 'gateway' && r.route === 'ws-runner');
  assert.ok(recs.length >= 9);
  assert.ok(recs.every((r) => r.runnerId === 'r1' && r.cluster === 'c1'));
  // /ws/runner streams are spliced: bytesIn counts the bytes after the request head as sent (chunk framing included).
  const sinkIn = Number(recs.find((r) => r.path === '/sink')?.bytesIn);
  assert.ok(sinkIn >= size && sinkIn < size + 4096, `bytesIn ${sinkIn} for a ${size}-byte body`);
});

test('runner WebSockets are refused before the upgrade with Status bodies', async (t) => {
  const rig = await startRunnerRig(t);
  const cases: Array<{ what: string; opts: { token?: string; query?: string; protocols?: string[] }; code: number; body: Record<string, unknown> }> = [
    { what: 'no token', opts: {}, code: 401, body: status(401, 'Unauthorized', 'a valid runner token is required (Authorization: Bearer <token>)') },
    {
      what: 'an agent token',
      opts: { token: T.agentC1 },
      code: 401,
      body: status(401, 'Unauthorized', 'a valid runner token is required (Authorization: Bearer <token>)'),
    },
    {
      what: 'another cluster',
      opts: { token: T.runnerC1, query: 'runner_id=x&cluster=c2' },
      code: 403,
      body: status(403, 'Forbidden', 'runner "r1" is not allowed to reach cluster "c2"'),
    },
    {
      what: 'no cluster',
      opts: { token: T.runnerC1, query: 'runner_id=x' },
      code: 400,
      body: status(400, 'BadRequest', 'the cluster query parameter is required'),
    },
    {
      what: 'no subprotocol',
      opts: { token: T.runnerC1, protocols: ['something-else'] },
      code: 400,
      body: status(400, 'BadRequest', 'subprotocol pipeops-tunnel.v1 required'),
    },
  ];
  for (const c of cases) {
    const d = await dialRunner(rig, t, c.opts);
    assert.ok('refused' in d, `${c.what}: was upgraded`);
    assert.equal(d.refused, c.code, c.what);
    assert.deepEqual(d.body, c.body, c.what);
  }
  const metrics = await rig.gw.registry.getSingleMetricAsString('pipeops_tunnel_runner_sessions');
  assert.match(metrics, /pipeops_tunnel_runner_sessions 0/);
});

test('a bad request on one runner stream gets a 400 Status; the session, the agent and other runners carry on', async (t) => {
  const rig = await startRunnerRig(t);
  const a = await dialRunner(rig, t, { token: T.runnerC1 });
  const b = await dialRunner(rig, t, { token: T.runnerAll });
  assert.ok('session' in a && 'session' in b);
  await waitFor(async () => /pipeops_tunnel_runner_sessions 2/.test(await rig.gw.registry.getSingleMetricAsString('pipeops_tunnel_runner_sessions')), {
    what: 'two sessions',
  });
  const raw = a.session.open();
  raw.end('GET http://127.0.0.1:1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const text = String(await readAll(raw));
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.equal((JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { reason: string }).reason, 'BadRequest');
  assert.equal((await send(a.session, 'GET', '/version')).status, 200, 'the session survives');
  // Runner a goes away abruptly: only its session closes.
  a.ws.terminate();
  await waitFor(async () => /pipeops_tunnel_runner_sessions 1/.test(await rig.gw.registry.getSingleMetricAsString('pipeops_tunnel_runner_sessions')), {
    what: 'one session left',
  });
  assert.equal((await send(b.session, 'GET', '/version')).status, 200, 'the other runner is unaffected');
  assert.equal(rig.agent.state, 'connected');
  // Draining the gateway closes runner sessions too.
  const closed = once(b.ws, 'close');
  await rig.gw.gateway.close(1_000);
  await closed;
});

test('GET /ws/k8s authenticates the runner before the upgrade and then speaks the JSON protocol', async (t) => {
  const rig = await startRunnerRig(t);
  const refused = new WebSocket(`${rig.gw.wsUrl}/ws/k8s?cluster=c1`, { ca: rig.gw.ca });
  refused.on('error', () => {
    /* refused before the upgrade: terminate() below reports it */
  });
  t.after(() => refused.terminate());
  const [, res] = (await once(refused, 'unexpected-response')) as [unknown, IncomingMessage];
  assert.equal(res.statusCode, 401);
  assert.equal((JSON.parse(String(await readAll(res))) as { kind: string }).kind, 'Status');
  const ws = new WebSocket(`${rig.gw.wsUrl}/ws/k8s?cluster=c1`, { ca: rig.gw.ca, headers: { authorization: `Bearer ${T.runnerC1}` } });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  ws.send(JSON.stringify({ id: 'q1', method: 'GET', path: '/version' }));
  const [data] = (await once(ws, 'message')) as [Buffer];
  const reply = JSON.parse(String(data)) as { id: string; status: number };
  assert.equal(reply.id, 'q1');
  assert.equal(reply.status, 200);
});

/**
 * Writes `head` on a fresh stream of `session`, optionally half-closing, and
 * reads everything back; a reset after the answer (a refused head is answered,
 * then the stream reset while the runner may still be sending) ends the read.
 */
async function rawExchange(session: Session, head: string, o: { end?: boolean } = {}): Promise<string> {
  const raw = session.open();
  if (o.end === true) raw.end(head);
  else raw.write(head);
  let text = '';
  try {
    for await (const chunk of raw) text += String(chunk);
  } catch (err) {
    if (text === '') throw err;
  }
  return text;
}

test('runner streams are spliced: a half-close after the request still gets the whole response, with the request id added', async (t) => {
  const rig = await startRunnerRig(t);
  const dialed = await dialRunner(rig, t, { token: T.runnerC1 });
  assert.ok('session' in dialed);
  const text = await rawExchange(dialed.session, 'GET /version HTTP/1.1\r\nHost: cluster\r\nx-pipeops-request-id: splice-1\r\n\r\n', { end: true });
  assert.match(text, /^HTTP\/1\.1 200 OK\r\nx-pipeops-request-id: splice-1\r\n/);
  assert.equal((JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  // The audit record is written once the exchange is over on both sides, which may be just after the runner has its response.
  const isRecord = (r: Record<string, unknown>): boolean => r.event === 'audit' && r.side === 'gateway' && r.requestId === 'splice-1';
  await waitFor(() => rig.gw.log.records().some(isRecord), { what: 'the gateway audit record' });
  const rec = rig.gw.log.records().find(isRecord);
  assert.equal(rec?.status, 200);
  assert.equal(rec?.route, 'ws-runner');
});

test('an interim 100 Continue reaches the runner as it is and the final head carries the request id', async (t) => {
  const rig = await startRunnerRig(t);
  const dialed = await dialRunner(rig, t, { token: T.runnerC1 });
  assert.ok('session' in dialed);
  const raw = dialed.session.open();
  raw.write('POST /sink HTTP/1.1\r\nHost: cluster\r\nContent-Length: 5\r\nExpect: 100-continue\r\nx-pipeops-request-id: cont-1\r\n\r\n');
  let seen = '';
  for await (const chunk of raw) {
    seen += String(chunk);
    if (seen.includes('100 Continue\r\n\r\n') && !seen.includes('hello')) {
      raw.write('hello');
      seen += 'hello';
    }
    if (/"bytes":5/.test(seen)) break;
  }
  assert.match(seen, /^HTTP\/1\.1 100 Continue\r\n\r\nhello/);
  assert.match(seen.slice(seen.indexOf('hello')), /HTTP\/1\.1 200 OK\r\nx-pipeops-request-id: cont-1\r\n/);
});

test('a runner that half-closes during a streaming WATCH ends the upstream watch; an oversized head gets a 400 Status', async (t) => {
  const rig = await startRunnerRig(t);
  const dialed = await dialRunner(rig, t, { token: T.runnerC1 });
  assert.ok('session' in dialed);
  const raw = dialed.session.open();
  raw.write('GET /api/v1/namespaces/default/pods?watch=1 HTTP/1.1\r\nHost: cluster\r\n\r\n');
  await rig.fake.watch.waitForWatchers(1);
  const [head] = (await once(raw, 'data')) as [Buffer];
  assert.match(String(head), /^HTTP\/1\.1 200 /);
  raw.end();
  await waitFor(() => rig.fake.watch.active === 0, { what: 'the upstream watch to end' });

  const big = await rawExchange(dialed.session, `GET /version HTTP/1.1\r\nHost: cluster\r\nX-Big: ${'a'.repeat(40 * 1024)}\r\n\r\n`);
  assert.match(big, /^HTTP\/1\.1 400 /);
  assert.equal((JSON.parse(big.slice(big.indexOf('\r\n\r\n') + 4)) as { message: string }).message, 'request head too large');
  const malformed = await rawExchange(dialed.session, 'GET /version HTTP/1.1\r\nHost: cluster\r\n folded: value\r\n\r\n');
  assert.match(malformed, /^HTTP\/1\.1 400 /);
  assert.equal((await send(dialed.session, 'GET', '/version')).status, 200, 'the session carries on');
});

test('a /ws/runner stream that never sends its request head is closed after requestHeadTimeoutMs and audited', async (t) => {
  const rig = await startRunnerRig(t, { requestHeadTimeoutMs: 300 });
  const dialed = await dialRunner(rig, t, { token: T.runnerC1 });
  assert.ok('session' in dialed);
  const idle = dialed.session.open();
  idle.on('error', () => {});
  idle.resume();
  await new Promise((resolve) => idle.once('close', resolve));
  await waitFor(() => rig.gw.log.records().some((r) => r.event === 'audit' && r.route === 'ws-runner' && r.error === 'no request head in time'));
  const ok = await send(dialed.session, 'GET', '/version');
  assert.equal(ok.status, 200, 'the session keeps serving');
});

test('a runner opening thousands of streams it never uses is capped: beyond max_streams the mux resets them, memory stays bounded', async (t) => {
  const rig = await startRunnerRig(t, { runnerLimits: { maxStreams: 10 } });
  const dialed = await dialRunner(rig, t, { token: T.runnerC1 });
  assert.ok('session' in dialed);
  const streams = Array.from({ length: 2_000 }, () => {
    const s = dialed.session.open();
    s.on('error', () => {});
    return s;
  });
  // The gateway keeps at most max_streams + 64 of them; the rest are reset at once.
  await waitFor(() => streams.filter((s) => s.destroyed).length >= 2_000 - 74, { timeoutMs: 15_000, what: 'the streams beyond the cap to be reset' });
  // Of those it keeps, the ones beyond max_streams hold no slot: they wait for their head like any other.
  const metrics = await rig.gw.registry.metrics();
  assert.doesNotMatch(metrics, /pipeops_tunnel_runner_streams_active\{runner="r1"\} ([1-9]\d+)/);
  for (const s of streams) s.destroy();
});
