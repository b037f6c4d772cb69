import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadAgentConfig, toAgentOptions } from '../src/agent-config.ts';
import { CliError } from '../src/errors.ts';
import { parseDurationMs } from '../src/duration.ts';
import { proxyFromEnv } from '../src/proxy-env.ts';
import { tempDir, writeFile } from './helpers.ts';

const required = {
  PIPEOPS_PIPEOPS_API_URL: 'https://gw.example.com',
  PIPEOPS_PIPEOPS_TOKEN: 'secret-token',
  PIPEOPS_AGENT_CLUSTER_NAME: 'c1',
};

test('durations are read as milliseconds in every accepted spelling', () => {
  assert.equal(parseDurationMs('500ms'), 500);
  assert.equal(parseDurationMs('30s'), 30_000);
  assert.equal(parseDurationMs('1m'), 60_000);
  assert.equal(parseDurationMs('1m30s'), 90_000);
  assert.equal(parseDurationMs('2h'), 7_200_000);
  assert.equal(parseDurationMs('1.5s'), 1_500);
  assert.equal(parseDurationMs('250'), 250);
  assert.equal(parseDurationMs('5 minutes'), undefined);
  assert.equal(parseDurationMs('s'), undefined);
});

test('defaults apply when neither file, environment nor flags set a key', () => {
  const c = loadAgentConfig({}, required);
  assert.equal(c.agent.port, 8080);
  assert.equal(c.agent.poll_interval, 30_000);
  assert.equal(c.pipeops.timeout, 30_000);
  assert.equal(c.pipeops.reconnect.max_attempts, 10);
  assert.equal(c.pipeops.reconnect.interval, 5_000);
  assert.equal(c.pipeops.reconnect.max_interval, 60_000);
  assert.equal(c.pipeops.tls.enabled, true);
  assert.equal(c.kubernetes.namespace, 'pipeops-system');
  assert.equal(c.agent.log_level, 'info');
  assert.match(c.agent.id, /^[0-9a-f-]{36}$/, 'a random UUID is generated when agent.id is empty');
  assert.notEqual(loadAgentConfig({}, required).agent.id, c.agent.id);
});

test('flags override the environment, which overrides the file, which overrides defaults', (t) => {
  const dir = tempDir(t);
  const file = writeFile(
    dir,
    'c.yaml',
    [
      'agent:',
      '  port: 1001',
      '  cluster_name: from-file',
      '  name: file-name',
      '  poll_interval: 10s',
      '  labels: { env: file }',
      'pipeops:',
      '  api_url: https://file.example.com',
      '  timeout: 7s',
    ].join('\n'),
  );
  const env = {
    PIPEOPS_PIPEOPS_TOKEN: 'tok',
    PIPEOPS_AGENT_PORT: '1002',
    PIPEOPS_AGENT_CLUSTER_NAME: 'from-env',
    PIPEOPS_AGENT_POLL_INTERVAL: '20s',
    PIPEOPS_AGENT_LABELS: 'env=envvar,team=infra',
  };
  const c = loadAgentConfig({ config: file, port: '1003' }, env);
  assert.equal(c.agent.port, 1003, 'flag beats env and file');
  assert.equal(c.agent.cluster_name, 'from-env', 'env beats file');
  assert.equal(c.agent.poll_interval, 20_000, 'env beats file (duration)');
  assert.deepEqual(c.agent.labels, { env: 'envvar', team: 'infra' }, 'env beats file (labels)');
  assert.equal(c.agent.name, 'file-name', 'file beats default');
  assert.equal(c.pipeops.timeout, 7_000, 'file beats default (duration)');
  assert.equal(c.pipeops.api_url, 'https://file.example.com');
  const f = loadAgentConfig({ config: file, 'cluster-name': 'from-flag', 'pipeops-url': 'https://flag.example.com', debug: true, 'in-cluster': true }, env);
  assert.equal(f.agent.cluster_name, 'from-flag');
  assert.equal(f.pipeops.api_url, 'https://flag.example.com');
  assert.equal(f.agent.debug, true);
  assert.equal(f.kubernetes.in_cluster, true);
});

test('booleans from the environment accept true/false/1/0/yes/no and reject anything else', () => {
  assert.equal(loadAgentConfig({}, { ...required, PIPEOPS_PIPEOPS_TLS_INSECURE_SKIP_VERIFY: 'yes' }).pipeops.tls.insecure_skip_verify, true);
  assert.equal(loadAgentConfig({}, { ...required, PIPEOPS_PIPEOPS_RECONNECT_ENABLED: '0' }).pipeops.reconnect.enabled, false);
  assert.throws(
    () => loadAgentConfig({}, { ...required, PIPEOPS_PIPEOPS_TLS_ENABLED: 'maybe' }),
    (e: unknown) => e instanceof CliError && /pipeops\.tls\.enabled: must be true or false/.test(e.message),
  );
});

test('the agent options carry every configured value, with proxy and kubeconfig from the environment', () => {
  const c = loadAgentConfig(
    {},
    {
      ...required,
      PIPEOPS_PIPEOPS_TLS_CA_FILE: '',
      PIPEOPS_PIPEOPS_RECONNECT_MAX_ATTEMPTS: '2',
      PIPEOPS_AGENT_LABELS: '{"a":"b"}',
    },
  );
  const o = toAgentOptions(c, { HTTPS_PROXY: 'http://proxy:3128', no_proxy: '.internal', KUBECONFIG: '/k/config' }, '9.9.9');
  assert.equal(o.apiUrl, 'https://gw.example.com');
  assert.equal(o.token, 'secret-token');
  assert.equal(o.clusterName, 'c1');
  assert.equal(o.version, '9.9.9');
  assert.deepEqual(o.labels, { a: 'b' });
  assert.equal(o.allowInsecureTransport, false);
  assert.deepEqual(o.reconnect, { enabled: true, maxAttempts: 2, intervalMs: 5_000, maxIntervalMs: 60_000 });
  assert.deepEqual(o.proxy, { httpsProxy: 'http://proxy:3128', noProxy: '.internal' });
  assert.deepEqual(o.kubernetes, { kubeconfig: '/k/config', inCluster: false, namespace: 'pipeops-system', accessAs: 'agent' });
  assert.deepEqual(o.tls, { insecureSkipVerify: false });
});

test('tls.enabled false permits an http or ws URL and maps to allowInsecureTransport', () => {
  const env = { ...required, PIPEOPS_PIPEOPS_API_URL: 'ws://127.0.0.1:1', PIPEOPS_PIPEOPS_TLS_ENABLED: 'false' };
  const o = toAgentOptions(loadAgentConfig({}, env), {}, '1');
  assert.equal(o.allowInsecureTransport, true);
  assert.equal(o.apiUrl, 'http://127.0.0.1:1');
  assert.throws(
    () => loadAgentConfig({}, { ...env, PIPEOPS_PIPEOPS_TLS_ENABLED: 'true' }),
    (e: unknown) => e instanceof CliError && /pipeops\.api_url: ws:\/\/ is not encrypted/.test(e.message),
  );
});

test('no proxy variables means no proxy option, and lower-case variables win', () => {
  assert.equal(proxyFromEnv({}), undefined);
  assert.deepEqual(proxyFromEnv({ https_proxy: 'http://a:1', HTTPS_PROXY: 'http://b:1' }), { httpsProxy: 'http://a:1' });
});

test('tunnel sizes are read as bytes from the file or the environment and reach the mux options', () => {
  const fromEnv = loadAgentConfig({}, { ...required, PIPEOPS_TUNNEL_STREAM_WINDOW: '4MiB', PIPEOPS_TUNNEL_MAX_STREAMS: '20000' });
  assert.deepEqual(toAgentOptions(fromEnv, {}, '0.0.0').mux, {
    maxStreamWindowBytes: 4 * 1024 * 1024,
    autoTuneWindow: true,
    maxConcurrentStreams: 20_000,
    sessionWindowGrowthBytes: 64 * 1024 * 1024,
    keepAliveIntervalMs: 30_000,
    keepAliveTimeoutMs: 10_000,
  });
  const defaults = loadAgentConfig({}, required);
  assert.deepEqual(toAgentOptions(defaults, {}, '0.0.0').mux, {
    maxStreamWindowBytes: 16 * 1024 * 1024,
    autoTuneWindow: true,
    maxConcurrentStreams: 65_536,
    sessionWindowGrowthBytes: 64 * 1024 * 1024,
    keepAliveIntervalMs: 30_000,
    keepAliveTimeoutMs: 10_000,
  });
  assert.equal(loadAgentConfig({}, { ...required, PIPEOPS_TUNNEL_STREAM_WINDOW: '262144' }).tunnel.stream_window, 262_144);
  assert.equal(loadAgentConfig({}, { ...required, PIPEOPS_TUNNEL_WINDOW_BUDGET: '0' }).tunnel.window_budget, 0);
  const keepalive = loadAgentConfig({}, { ...required, PIPEOPS_TUNNEL_KEEPALIVE_INTERVAL: '5s', PIPEOPS_TUNNEL_KEEPALIVE_TIMEOUT: '2s' });
  assert.deepEqual(
    [toAgentOptions(keepalive, {}, '0.0.0').mux?.keepAliveIntervalMs, toAgentOptions(keepalive, {}, '0.0.0').mux?.keepAliveTimeoutMs],
    [5_000, 2_000],
  );
  assert.throws(
    () => loadAgentConfig({}, { ...required, PIPEOPS_TUNNEL_KEEPALIVE_INTERVAL: 'soon' }),
    (err: CliError) => err.message.includes('tunnel.keepalive_interval'),
  );
});

test('a tunnel window below the yamux initial window or not a size is refused naming the key', () => {
  for (const bad of ['100KiB', 'lots', '16MB']) {
    assert.throws(
      () => loadAgentConfig({}, { ...required, PIPEOPS_TUNNEL_STREAM_WINDOW: bad }),
      (err: CliError) => err.message.includes('tunnel.stream_window'),
      bad,
    );
  }
});

test('access_as and the owner policy are read from the file, the environment (lists comma-separated) and --access-as', (t) => {
  const file = writeFile(
    tempDir(t),
    'agent.yaml',
    [
      'kubernetes: { access_as: runner }',
      'policy: { read_only: true, deny_resources: [secrets], namespaces: [team-a, team-b] }',
      'audit: { file: /var/log/pipeops/audit.jsonl }',
    ].join('\n'),
  );
  const fromFile = loadAgentConfig({ config: file }, required);
  assert.equal(fromFile.kubernetes.access_as, 'runner');
  assert.deepEqual(fromFile.policy, { read_only: true, deny_subresources: [], deny_resources: ['secrets'], namespaces: ['team-a', 'team-b'] });
  const o = toAgentOptions(fromFile, {}, '1.0.0');
  assert.equal(o.kubernetes.accessAs, 'runner');
  assert.equal(o.policy?.readOnly, true);
  assert.deepEqual(o.policy?.namespaces, ['team-a', 'team-b']);
  assert.deepEqual(o.audit, { file: '/var/log/pipeops/audit.jsonl' });
  const fromEnv = loadAgentConfig(
    { config: file, 'access-as': 'agent' },
    {
      ...required,
      PIPEOPS_POLICY_DENY_SUBRESOURCES: 'exec, attach,portforward',
      PIPEOPS_POLICY_READ_ONLY: 'false',
    },
  );
  assert.equal(fromEnv.kubernetes.access_as, 'agent', 'the flag wins over the file');
  assert.deepEqual(fromEnv.policy.deny_subresources, ['exec', 'attach', 'portforward']);
  assert.equal(fromEnv.policy.read_only, false);
});

test('an unknown access_as or a malformed policy name is a configuration error naming the key', () => {
  const fails = (env: Record<string, string>, key: RegExp): void => {
    assert.throws(
      () => loadAgentConfig({}, { ...required, ...env }),
      (err: unknown) => err instanceof CliError && key.test(err.message),
    );
  };
  fails({ PIPEOPS_KUBERNETES_ACCESS_AS: 'admin' }, /kubernetes\.access_as: must be agent or runner/);
  fails({ PIPEOPS_POLICY_NAMESPACES: 'Team_A' }, /policy\.namespaces/);
  fails({ PIPEOPS_POLICY_DENY_RESOURCES: 'secrets,Not A Name' }, /policy\.deny_resources/);
});
