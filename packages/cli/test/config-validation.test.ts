import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadAgentConfig } from '../src/agent-config.ts';
import { loadGatewayConfig } from '../src/gateway-config.ts';
import { cleanEnv, countingServer, ROOT, runCli, tempDir, writeFile } from './helpers.ts';

const TOKEN = 'tkn-validation-7f3e9a';

describe('invalid configuration exits 2 naming the key, before any connection', { concurrency: true }, () => {
  const cases: Array<{ name: string; env?: Record<string, string>; args?: string[]; file?: string; key: RegExp }> = [
    { name: 'pipeops.api_url missing', env: { PIPEOPS_PIPEOPS_API_URL: '' }, key: /pipeops\.api_url: is required/ },
    { name: 'pipeops.token missing', env: { PIPEOPS_PIPEOPS_TOKEN: '' }, key: /pipeops\.token: is required/ },
    { name: 'agent.cluster_name missing', env: { PIPEOPS_AGENT_CLUSTER_NAME: '' }, key: /agent\.cluster_name: is required/ },
    { name: 'a bad duration', env: { PIPEOPS_AGENT_POLL_INTERVAL: '5 minutes' }, key: /agent\.poll_interval: must be a duration/ },
    { name: 'an unknown key in the file', file: 'agent:\n  colour: blue\n', key: /agent\.colour: unknown key/ },
    { name: 'a bad URL', args: ['--pipeops-url', 'not a url'], key: /pipeops\.api_url: must be an absolute URL/ },
    { name: 'a URL with another scheme', args: ['--pipeops-url', 'ftp://127.0.0.1/'], key: /pipeops\.api_url: must use https/ },
    { name: 'a port out of range', args: ['--port', '70000'], key: /agent\.port: ports must be within range/ },
    { name: 'a bad log level', args: ['--log-level', 'loud'], key: /agent\.log_level: must be one of/ },
    {
      name: 'a missing CA file',
      env: { PIPEOPS_PIPEOPS_TLS_CA_FILE: '/nonexistent/ca.pem' },
      key: /pipeops\.tls\.ca_file: file \/nonexistent\/ca\.pem cannot be read/,
    },
    { name: 'an unknown flag', args: ['--colour', 'blue'], key: /Unknown option '--colour'[\s\S]*Usage: pipeops-tunnel connect/ },
  ];
  for (const c of cases) {
    test(`${c.name} is reported and nothing is dialed`, async (t) => {
      const server = await countingServer(t);
      const env = cleanEnv({
        PIPEOPS_PIPEOPS_API_URL: `http://127.0.0.1:${server.port}`,
        PIPEOPS_PIPEOPS_TLS_ENABLED: 'false',
        PIPEOPS_PIPEOPS_TOKEN: TOKEN,
        PIPEOPS_AGENT_CLUSTER_NAME: 'c1',
        PIPEOPS_AGENT_PORT: '0',
        ...c.env,
      });
      const args = ['connect', ...(c.args ?? [])];
      if (c.file !== undefined) args.push('--config', writeFile(tempDir(t), 'agent.yaml', c.file));
      const r = await runCli(args, env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, c.key);
      assert.ok(!r.stderr.includes(TOKEN) && !r.stdout.includes(TOKEN), 'the token is never printed');
      assert.equal(await server.connections(), 0, 'no connection attempted');
    });
  }
  test('a kubeconfig that is there but unusable (not YAML, no current context) exits 2 naming kubernetes.kubeconfig, and its secrets are never printed', async (t) => {
    const dir = tempDir(t);
    const secret = 'kube-secret-token-4d2c9e';
    const files = {
      'not YAML': writeFile(dir, 'broken.yaml', `apiVersion: v1\nusers:\n- name: u\n  user: {token: ${secret}\n   clusters: [\n`),
      'no current context': writeFile(
        dir,
        'nocontext.yaml',
        `apiVersion: v1\nclusters: [{ name: c, cluster: { server: "https://127.0.0.1:6443" } }]\nusers: [{ name: u, user: { token: ${secret} } }]\n`,
      ),
    };
    for (const [what, file] of Object.entries(files)) {
      const server = await countingServer(t);
      const r = await runCli(
        ['connect', '--kubeconfig', file],
        cleanEnv({
          PIPEOPS_PIPEOPS_API_URL: `http://127.0.0.1:${server.port}`,
          PIPEOPS_PIPEOPS_TLS_ENABLED: 'false',
          PIPEOPS_PIPEOPS_TOKEN: TOKEN,
          PIPEOPS_AGENT_CLUSTER_NAME: 'c1',
          PIPEOPS_AGENT_PORT: '0',
        }),
      );
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.match(
        r.stderr,
        what === 'not YAML'
          ? /kubernetes\.kubeconfig: kubeconfig .*broken\.yaml is not valid YAML \(\w+ at line \d+, column \d+\)/
          : /kubernetes\.kubeconfig: kubeconfig .*nocontext\.yaml: no current-context is set/,
      );
      assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret), `${what}: the kubeconfig's token is never printed`);
      assert.equal(await server.connections(), 0, `${what}: no connection attempted`);
    }
  });
  test('an unreadable config file is reported with its path', async (t) => {
    const r = await runCli(['connect', '--config', join(tempDir(t), 'missing.yaml')], cleanEnv());
    assert.equal(r.code, 2);
    assert.match(r.stderr, /config file .*missing\.yaml: cannot be read \(ENOENT\)/);
  });
  test('a gateway without tokens file is reported with the key', async () => {
    const r = await runCli(['gateway', '--listen', '127.0.0.1:0'], cleanEnv());
    assert.equal(r.code, 2);
    assert.match(r.stderr, /gateway\.tokens_file: is required/);
  });
  test('a gateway with a Redis URL but no advertise URL or replica secret is reported with the keys, and the Redis password is never printed', async () => {
    const password = 'redis-pass-9b1f';
    const r = await runCli(
      ['gateway', '--listen', '127.0.0.1:0', '--dev', '--tokens', join(ROOT, 'tokens.example.yaml'), '--redis-url', `redis://:${password}@127.0.0.1:1`],
      cleanEnv(),
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /gateway\.replica\.advertise_url: is required with gateway\.redis\.url/);
    assert.match(r.stderr, /gateway\.replica\.secret_file: is required with gateway\.redis\.url/);
    assert.ok(!r.stderr.includes(password) && !r.stdout.includes(password), 'the Redis password is never printed');
    const bad = await runCli(
      ['gateway', '--listen', '127.0.0.1:0', '--dev', '--tokens', join(ROOT, 'tokens.example.yaml')],
      cleanEnv({ PIPEOPS_GATEWAY_REDIS_URL: 'http://redis:6379' }),
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /gateway\.redis\.url: must be a redis:\/\/ or rediss:\/\/ URL/);
  });
  test('a gateway without certificate, --dev or allow_insecure is reported with the key', async () => {
    const r = await runCli(['gateway', '--listen', '127.0.0.1:0', '--tokens', join(ROOT, 'tokens.example.yaml')], cleanEnv());
    assert.equal(r.code, 2);
    assert.match(r.stderr, /gateway\.tls\.cert: is required \(or gateway\.dev: true/);
  });
  test('a gateway whose tokens file is invalid exits 2 naming the entry, without listening', async (t) => {
    const tokens = writeFile(tempDir(t), 'tokens.yaml', 'agents: [{ cluster: c1, token: short }]\n');
    const r = await runCli(['gateway', '--listen', '127.0.0.1:0', '--dev', '--tokens', tokens], cleanEnv());
    assert.equal(r.code, 2);
    assert.match(r.stdout + r.stderr, /agents\[0\]: token must be a string of at least 8 characters/);
    assert.doesNotMatch(r.stdout, /gateway listening/);
  });
  test('a gateway listen address without a port is reported', async () => {
    const r = await runCli(['gateway', '--listen', '127.0.0.1', '--dev'], cleanEnv({ PIPEOPS_GATEWAY_TOKENS_FILE: join(ROOT, 'tokens.example.yaml') }));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /gateway\.listen: must be HOST:PORT/);
  });
});

test('config.example.yaml loads and validates as is with only the token from the environment', () => {
  const c = loadAgentConfig({ config: join(ROOT, 'config.example.yaml') }, { PIPEOPS_PIPEOPS_TOKEN: 'tok' });
  assert.equal(c.agent.cluster_name, 'my-cluster');
  assert.equal(c.pipeops.api_url, 'https://api.pipeops.io');
  assert.equal(c.pipeops.reconnect.max_interval, 60_000);
  assert.deepEqual(c.agent.labels, { environment: 'production' });
});

test('config.example.yaml documents every agent key with a comment', async () => {
  const { readFileSync } = await import('node:fs');
  const { schemaKeys } = await import('../src/config-loader.ts');
  const { agentSchema } = await import('../src/agent-config.ts');
  const text = readFileSync(join(ROOT, 'config.example.yaml'), 'utf8');
  for (const [key] of schemaKeys(agentSchema)) {
    const leaf = key.split('.').at(-1)!;
    assert.match(text, new RegExp(`#[^\\n]*\\n(\\s*#[^\\n]*\\n)*\\s*${leaf}:`), `${key} is present and preceded by a comment`);
  }
});

test('gateway.example.yaml loads and validates with certificate files and tokens path from the environment', (t) => {
  const dir = tempDir(t);
  const c = loadGatewayConfig(
    { config: join(ROOT, 'gateway.example.yaml') },
    {
      PIPEOPS_GATEWAY_TLS_CERT: writeFile(dir, 'tls.crt', 'x'),
      PIPEOPS_GATEWAY_TLS_KEY: writeFile(dir, 'tls.key', 'x'),
      PIPEOPS_GATEWAY_TOKENS_FILE: join(ROOT, 'tokens.example.yaml'),
    },
  );
  assert.equal(c.gateway.listen, '0.0.0.0:8443');
  assert.equal(c.gateway.drain_timeout, 30_000);
});

test('gateway.cluster_address_suffix defaults to clusters.localhost, is read from the flag and PIPEOPS_GATEWAY_CLUSTER_ADDRESS_SUFFIX, and is checked', (t) => {
  const tokens = writeFile(tempDir(t), 'tokens.yaml', 'runners: []\n');
  const flags = { tokens, dev: true };
  assert.equal(loadGatewayConfig(flags, {}).gateway.cluster_address_suffix, 'clusters.localhost');
  assert.equal(loadGatewayConfig(flags, { PIPEOPS_GATEWAY_CLUSTER_ADDRESS_SUFFIX: '' }).gateway.cluster_address_suffix, '');
  assert.equal(
    loadGatewayConfig({ ...flags, 'cluster-address-suffix': 'k8s.example.com' }, { PIPEOPS_GATEWAY_CLUSTER_ADDRESS_SUFFIX: 'other.example.com' }).gateway
      .cluster_address_suffix,
    'k8s.example.com',
  );
  assert.throws(
    () => loadGatewayConfig(flags, { PIPEOPS_GATEWAY_CLUSTER_ADDRESS_SUFFIX: '*.example.com' }),
    /gateway\.cluster_address_suffix: must be a lower-case DNS name of at least two labels/,
  );
});

test('the gateway reads runner limits and the audit file from the file and PIPEOPS_RUNNERS_* / PIPEOPS_AUDIT_FILE', (t) => {
  const dir = tempDir(t);
  const tokens = writeFile(dir, 'tokens.yaml', 'runners: []\n');
  const file = writeFile(dir, 'gw.yaml', `gateway: { tokens_file: ${tokens}, dev: true }\nrunners: { max_streams: 50 }\n`);
  const c = loadGatewayConfig(
    { config: file },
    { PIPEOPS_RUNNERS_REQUESTS_PER_SECOND: '20', PIPEOPS_RUNNERS_BYTES_PER_SECOND: '10MiB', PIPEOPS_AUDIT_FILE: '/tmp/audit.jsonl' },
  );
  assert.deepEqual(c.runners, { max_streams: 50, requests_per_second: 20, burst: 0, bytes_per_second: 10 * 1024 * 1024 });
  assert.equal(c.audit.file, '/tmp/audit.jsonl');
  assert.throws(() => loadGatewayConfig({ config: file }, { PIPEOPS_RUNNERS_MAX_STREAMS: '-1' }), /runners\.max_streams/);
});
