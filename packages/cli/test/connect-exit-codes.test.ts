import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { cleanEnv, startCli } from './helpers.ts';

const TOKEN = 'tkn-exitcodes-5b1c0d';

async function closedPort(): Promise<number> {
  const s = createNetServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function agentEnv(apiUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return cleanEnv({
    PIPEOPS_PIPEOPS_API_URL: apiUrl,
    PIPEOPS_PIPEOPS_TLS_ENABLED: 'false',
    PIPEOPS_PIPEOPS_TOKEN: TOKEN,
    PIPEOPS_AGENT_CLUSTER_NAME: 'c1',
    PIPEOPS_AGENT_PORT: '0',
    PIPEOPS_AGENT_LISTEN_HOST: '127.0.0.1',
    PIPEOPS_PIPEOPS_RECONNECT_INTERVAL: '50ms',
    PIPEOPS_PIPEOPS_RECONNECT_MAX_INTERVAL: '100ms',
    ...extra,
  });
}

test('connect exits 4 when reconnect.max_attempts 2 are exhausted against a closed port', async (t) => {
  const port = await closedPort();
  const cli = startCli(t, ['connect', '--debug'], agentEnv(`http://127.0.0.1:${port}`, { PIPEOPS_PIPEOPS_RECONNECT_MAX_ATTEMPTS: '2' }));
  assert.equal(await cli.exited, 4, cli.output());
  await cli.waitFor((r) => r.msg === 'agent stopped with an error' && r.exitCode === 4, 'the error record');
  assert.ok(!cli.output().includes(TOKEN), 'the token never appears in the output');
});

test('connect exits 3 when the server refuses the credentials, and never logs the token at debug level', async (t) => {
  let authorization: string | undefined;
  const server = createServer((_req, res) => {
    res.writeHead(401).end();
  });
  server.on('upgrade', (req, socket) => {
    authorization = req.headers.authorization;
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  const { port } = server.address() as AddressInfo;
  const cli = startCli(t, ['connect', '--debug'], agentEnv(`http://127.0.0.1:${port}`));
  assert.equal(await cli.exited, 3, cli.output());
  assert.equal(authorization, `Bearer ${TOKEN}`, 'the token was sent');
  assert.ok(
    cli.records.some((r) => r.level === 20),
    'debug records were written',
  );
  assert.ok(!cli.output().includes(TOKEN), 'the token never appears in the output');
});

test('connect exits 0 on SIGTERM while waiting to reconnect, after serving /health', async (t) => {
  const port = await closedPort();
  const cli = startCli(t, ['connect'], agentEnv(`http://127.0.0.1:${port}`, { PIPEOPS_PIPEOPS_RECONNECT_MAX_ATTEMPTS: '0' }));
  const ready = await cli.waitFor((r) => typeof r.msg === 'string' && r.msg.startsWith('health listener on'), 'health listener');
  const health = await fetch(`http://127.0.0.1:${String(ready.port)}/health`);
  assert.equal(health.status, 200);
  const notReady = await fetch(`http://127.0.0.1:${String(ready.port)}/ready`);
  assert.equal(notReady.status, 503, 'not ready without a tunnel');
  cli.child.kill('SIGTERM');
  assert.equal(await cli.exited, 0, cli.output());
  await cli.waitFor((r) => r.msg === 'agent stopped', 'the stop record');
});
