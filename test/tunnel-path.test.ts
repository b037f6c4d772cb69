// The whole tunnel path, in one process with real parts: the gateway over TLS
// on 127.0.0.1, the agent dialing it with ws, yamux streams opened by the
// gateway and served by the agent's `ping` (echo) handler. What is proven here
// is what no single package can prove alone: bytes arrive intact through
// every layer, many streams share the path fairly, and a reader that stops
// reading holds back only its own stream.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createAgent, type AgentOptions } from '@pipeops/tunnel-agent';
import { createGateway, generateDevCertificates } from '@pipeops/tunnel-gateway';
import { requestOverStream } from '@pipeops/tunnel-protocol';

const AGENT_TOKEN = 'path-test-agent-token-0123456789';
const certs = generateDevCertificates({ hosts: ['127.0.0.1'] });

async function startTunnel(t: TestContext) {
  const gateway = createGateway(
    {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: certs.cert, key: certs.key },
      tokens: { agents: [{ cluster: 'c1', token: AGENT_TOKEN }], runners: [], admins: [] },
      drainTimeoutMs: 1_000,
      handshakeTimeoutMs: 5_000,
    },
    { logger: pino({ level: 'silent' }), registry: new Registry() },
  );
  const { port } = await gateway.start();
  t.after(() => gateway.close(500));

  const options: AgentOptions = {
    apiUrl: `https://127.0.0.1:${port}`,
    token: AGENT_TOKEN,
    agentId: 'a1',
    name: 'path test',
    clusterName: 'c1',
    labels: {},
    version: '0.0.0-test',
    pollIntervalMs: 60_000,
    timeoutMs: 5_000,
    port: 0,
    listenHost: '127.0.0.1',
    tls: { insecureSkipVerify: false, caFile: writeCa() },
    allowInsecureTransport: false,
    reconnect: { enabled: true, maxAttempts: 0, intervalMs: 100, maxIntervalMs: 1_000 },
    // A kubeconfig that does not exist: the agent connects, but cannot serve the Kubernetes path.
    kubernetes: { inCluster: false, namespace: 'default', kubeconfig: join(caDir, 'missing-kubeconfig') },
  };
  const agent = createAgent(options, { logger: pino({ level: 'silent' }), registry: new Registry() });
  t.after(() => agent.close(500));
  const connected = once(gateway, 'agent-connected');
  await agent.start();
  await connected;
  return { gateway, agent };
}

const caDir = mkdtempSync(join(tmpdir(), 'pipeops-tunnel-path-'));
process.on('exit', () => rmSync(caDir, { recursive: true, force: true }));
function writeCa(): string {
  const file = join(caDir, 'ca.pem');
  writeFileSync(file, certs.caCert);
  return file;
}

/** Writes `payload` in 64 KiB pieces with backpressure, ends, and resolves with the sha256 of everything read back. */
async function echo(stream: Duplex, payload: Buffer): Promise<string> {
  const hash = createHash('sha256');
  stream.on('data', (chunk: Buffer) => hash.update(chunk));
  const ended = once(stream, 'end');
  for (let off = 0; off < payload.length; off += 65_536) {
    if (!stream.write(payload.subarray(off, off + 65_536))) await once(stream, 'drain');
  }
  stream.end();
  await ended;
  return hash.digest('hex');
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('32 concurrent streams each echo 2 MiB intact through gateway, TLS WebSocket, mux and agent', async (t) => {
  const { gateway } = await startTunnel(t);
  const payloads = Array.from({ length: 32 }, () => randomBytes(2 * 1024 * 1024));
  const results = await Promise.all(
    payloads.map(async (payload, i) => {
      const stream = await gateway.openStream('c1', { kind: 'ping', requestId: `r${i}` });
      return echo(stream, payload);
    }),
  );
  assert.deepEqual(results, payloads.map(sha256));
});

test('a stream whose reader stops holds back only itself: the others finish while it is paused', async (t) => {
  const { gateway } = await startTunnel(t);
  const stalled = await gateway.openStream('c1', { kind: 'ping', requestId: 'stalled' });
  stalled.pause();
  // Write far more than one window into the paused stream: the echo comes back
  // until flow control stops it, without blocking the session.
  const big = randomBytes(8 * 1024 * 1024);
  let writtenBeforeBackpressure = 0;
  while (writtenBeforeBackpressure < big.length && stalled.write(big.subarray(writtenBeforeBackpressure, writtenBeforeBackpressure + 65_536))) {
    writtenBeforeBackpressure += 65_536;
  }
  assert.ok(writtenBeforeBackpressure < big.length, 'backpressure reached the writer of the paused stream');

  const others = Array.from({ length: 8 }, () => randomBytes(512 * 1024));
  const digests = await Promise.all(others.map(async (payload, i) => echo(await gateway.openStream('c1', { kind: 'ping', requestId: `o${i}` }), payload)));
  assert.deepEqual(digests, others.map(sha256));
  assert.ok(stalled.readableLength <= 4 * 1024 * 1024, `paused stream buffered ${stalled.readableLength} bytes, bounded by flow control`);
  stalled.destroy();
});

test('an http stream the agent cannot serve (no Kubernetes credentials) gets a 503 Status, and the session carries on', async (t) => {
  const { gateway } = await startTunnel(t);
  const stream = await gateway.openStream('c1', { kind: 'http', requestId: 'no-credentials' });
  const result = await requestOverStream(stream, { method: 'GET', path: '/version', headers: { host: 'kubernetes' } });
  assert.equal(result.upgraded, false);
  assert.equal(result.response.statusCode, 503);
  let text = '';
  for await (const chunk of result.response) text += String(chunk);
  assert.equal(JSON.parse(text).kind, 'Status');
  const payload = randomBytes(100_000);
  assert.equal(await echo(await gateway.openStream('c1', { kind: 'ping', requestId: 'after' }), payload), sha256(payload));
});
