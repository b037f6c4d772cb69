// Regression tests for JSON nested so deeply that serialising it overflowed
// the stack: a request body 100,000 deep on /ws/k8s, or a deep response
// relayed there, threw a RangeError out of an event handler and ended the
// gateway process. Now that id gets PT_ERR_JSON_TOO_DEEP and the socket
// carries on. Through the real gateway, with an agent double serving HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import WebSocket from 'ws';
import { T, startGateway, type TestGateway } from './helpers/gateway.ts';
import { RunnerClient } from './json-protocol-harness.ts';
import { connectHttpAgent, deepJsonText, httpsGet } from './hostile-helpers.ts';

const DEPTH = 100_000;

/** The agent's API server: `/deep` answers JSON nested {@link DEPTH} deep, `/deep-watch` streams one such event, anything else echoes. */
function app(onAborted: (url: string) => void = () => {}) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.once('close', () => {
        if (!res.writableFinished) onAborted(req.url ?? '');
      });
      if (req.url === '/deep') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(deepJsonText(DEPTH));
      } else if (req.url === '/deep-watch') {
        res.writeHead(200, { 'content-type': 'application/json;stream=watch' });
        res.write('{"type":"ADDED","object":{"n":1}}\n');
        res.write(`{"type":"ADDED","object":${deepJsonText(DEPTH)}}\n`);
        // The stream stays open: the gateway must end it.
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: req.method, url: req.url, bytes: Buffer.concat(chunks).length }));
      }
    });
  };
}

async function runner(t: { after(fn: () => void): void }, gw: TestGateway): Promise<RunnerClient> {
  const ws = new WebSocket(`${gw.wsUrl}/ws/k8s?cluster=c1`, { ca: gw.ca, headers: { authorization: `Bearer ${T.runnerC1}` }, perMessageDeflate: false });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  return new RunnerClient(ws);
}

async function assertStillServing(gw: TestGateway, client: RunnerClient, id: string): Promise<void> {
  const ok = await client.request({ id, method: 'GET', path: '/after' });
  assert.equal(ok.status, 200, 'the same socket serves the next request');
  assert.deepEqual(ok.body, { method: 'GET', url: '/after', bytes: 0 });
  assert.equal((await httpsGet(`${gw.httpsUrl}/health`, gw.ca)).status, 200);
}

test('a request body nested 100,000 deep is answered PT_ERR_JSON_TOO_DEEP for its id, and the socket keeps serving', async (t) => {
  const gw = await startGateway(t);
  await connectHttpAgent(t, gw, T.agentC1, app());
  const client = await runner(t, gw);
  client.send(`{"id":"deep","method":"POST","path":"/echo","body":${deepJsonText(DEPTH)}}`);
  const final = await client.final('deep');
  assert.deepEqual(final, { id: 'deep', error: { code: 'PT_ERR_JSON_TOO_DEEP', message: 'body: nested too deeply to be encoded as JSON' } });
  // A body that is deep but encodable still goes through.
  const fine = await client.request({ id: 'fine', method: 'POST', path: '/echo', body: JSON.parse(deepJsonText(100)) as unknown });
  assert.equal(fine.status, 200);
  assert.equal((fine.body as { bytes: number }).bytes, 200);
  await assertStillServing(gw, client, 'after');
});

test('a response nested 100,000 deep is answered PT_ERR_JSON_TOO_DEEP for its id, and the socket keeps serving', async (t) => {
  const gw = await startGateway(t);
  await connectHttpAgent(t, gw, T.agentC1, app());
  const client = await runner(t, gw);
  const final = await client.request({ id: 7, method: 'GET', path: '/deep' });
  assert.equal(final.id, 7);
  assert.equal((final.error as { code: string }).code, 'PT_ERR_JSON_TOO_DEEP');
  assert.equal(client.for(7).length, 1, 'one message for that id, the error');
  await assertStillServing(gw, client, 'after');
  const log = gw.log.records().find((r) => r.event === 'audit' && r.route === 'ws-k8s' && r.path === '/deep');
  assert.equal(log?.outcome, 'error');
});

test('a WATCH event nested 100,000 deep ends that stream with PT_ERR_JSON_TOO_DEEP and aborts it upstream; the socket keeps serving', async (t) => {
  const gw = await startGateway(t);
  let aborted!: (url: string) => void;
  const abortedUrl = new Promise<string>((resolve) => {
    aborted = resolve;
  });
  await connectHttpAgent(t, gw, T.agentC1, app(aborted));
  const client = await runner(t, gw);
  client.send({ id: 'w', method: 'GET', path: '/deep-watch', stream: true });
  const final = await client.final('w');
  assert.equal((final.error as { code: string }).code, 'PT_ERR_JSON_TOO_DEEP');
  const messages = client.for('w');
  assert.equal(messages[0]?.status, 200);
  assert.deepEqual(messages[1]?.chunk, { type: 'ADDED', object: { n: 1 } }, 'the events before the deep one were relayed');
  assert.equal(messages.length, 3);
  await assertStillServing(gw, client, 'after');
  assert.equal(await abortedUrl, '/deep-watch', 'the upstream WATCH was aborted');
});
