import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { cleanEnv, startCli, tempDir, writeFile } from './helpers.ts';

const TOKEN = 'tkn-precedence-3c9d1e';

test('the running agent takes flags over environment over file over defaults, and logs its config without the token', async (t) => {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));

  const file = writeFile(
    tempDir(t),
    'agent.yaml',
    [
      'agent:',
      '  cluster_name: from-file',
      '  name: name-from-file',
      '  port: 1',
      '  listen_host: 127.0.0.1',
      'pipeops:',
      `  api_url: http://127.0.0.1:${port}`,
      '  timeout: 9s',
      '  tls: { enabled: false }',
      '  reconnect: { max_attempts: 1, interval: 50ms }',
    ].join('\n'),
  );
  const cli = startCli(
    t,
    ['connect', '--config', file, '--port', '0', '--debug'],
    cleanEnv({
      PIPEOPS_PIPEOPS_TOKEN: TOKEN,
      PIPEOPS_AGENT_PORT: '2',
      PIPEOPS_AGENT_CLUSTER_NAME: 'from-env',
      PIPEOPS_PIPEOPS_TIMEOUT: '8s',
    }),
  );
  const rec = await cli.waitFor((r) => r.msg === 'configuration loaded', 'configuration record');
  const config = rec.config as { agent: Record<string, unknown>; pipeops: Record<string, unknown>; kubernetes: Record<string, unknown> };
  assert.equal(config.agent.port, 0, 'flag over env and file');
  assert.equal(config.agent.cluster_name, 'from-env', 'env over file');
  assert.equal(config.pipeops.timeout, 8_000, 'env over file');
  assert.equal(config.agent.name, 'name-from-file', 'file over default');
  assert.equal(config.kubernetes.namespace, 'pipeops-system', 'default');
  assert.equal(config.agent.debug, true, 'flag');
  assert.equal(config.pipeops.token, '[Redacted]');
  const health = await cli.waitFor((r) => typeof r.msg === 'string' && r.msg.startsWith('health listener on'), 'health listener');
  assert.notEqual(health.port, 0);
  assert.equal(await cli.exited, 4, 'one failed attempt exhausts max_attempts 1');
  assert.ok(!cli.output().includes(TOKEN));
});

test('the agent serves default process metrics from the registry the CLI created', async (t) => {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  const cli = startCli(
    t,
    ['connect', '--port', '0', '--cluster-name', 'c1', '--pipeops-url', `http://127.0.0.1:${port}`],
    cleanEnv({
      PIPEOPS_PIPEOPS_TOKEN: TOKEN,
      PIPEOPS_PIPEOPS_ALLOW_INSECURE: 'true',
      PIPEOPS_AGENT_LISTEN_HOST: '127.0.0.1',
      PIPEOPS_PIPEOPS_RECONNECT_MAX_ATTEMPTS: '0',
    }),
  );
  const health = await cli.waitFor((r) => typeof r.msg === 'string' && r.msg.startsWith('health listener on'), 'health listener');
  const text = await (await fetch(`http://127.0.0.1:${String(health.port)}/metrics`)).text();
  assert.match(text, /^process_cpu_user_seconds_total /m, 'default metrics');
  assert.match(text, /^pipeops_tunnel_/m, 'the agent metrics on the same registry');
  cli.child.kill('SIGINT');
  assert.equal(await cli.exited, 0);
});
