// `pipeops-tunnel proxy` as a child process against a real gateway and agent
// (in this process) in front of the testkit's fake API server; kubectl talks
// to the proxy's local port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { createAgent } from '@pipeops/tunnel-agent';
import { createGateway } from '@pipeops/tunnel-gateway';
import { parse } from 'yaml';
import {
  collectLogs,
  FAKE_GIT_VERSION,
  FAKE_POD_NAMES,
  kubeconfigFor,
  kubectl,
  kubectlClientVersion,
  startFakeApiServer,
  testCertificates,
  waitFor,
  writeCaFile,
} from '@pipeops/tunnel-testkit';
import { parseListen, proxyFlags } from '../src/commands/proxy.ts';
import { cleanEnv, runCli, startCli } from './helpers.ts';

const AGENT_TOKEN = 'proxy-cli-agent-token-0123456789';
const RUNNER_TOKEN = 'proxy-cli-runner-token-0123456789';

async function startPath(t: TestContext): Promise<{ gatewayUrl: string; caFile: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'pt-proxy-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certs = testCertificates();
  const caFile = writeCaFile(dir, certs, 'gateway-ca.pem');
  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  const gateway = createGateway(
    {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: certs.cert, key: certs.key },
      tokens: { agents: [{ cluster: 'c1', token: AGENT_TOKEN }], runners: [{ id: 'r1', token: RUNNER_TOKEN, clusters: ['c1'] }], admins: [] },
      drainTimeoutMs: 500,
      handshakeTimeoutMs: 5_000,
    },
    { logger: collectLogs().logger('warn'), registry: new Registry() },
  );
  const { port } = await gateway.start();
  t.after(() => gateway.close(200));
  const kubeconfigFile = join(dir, 'agent-kubeconfig.yaml');
  writeFileSync(kubeconfigFile, kubeconfigFor({ server: fake.url, token: fake.token, caData: fake.caCert }), { mode: 0o600 });
  const agent = createAgent(
    {
      apiUrl: `https://127.0.0.1:${port}`,
      token: AGENT_TOKEN,
      agentId: 'a1',
      name: 'proxy cli',
      clusterName: 'c1',
      labels: {},
      version: '0.0.0-test',
      pollIntervalMs: 60_000,
      timeoutMs: 5_000,
      port: 0,
      listenHost: '127.0.0.1',
      tls: { insecureSkipVerify: false, caFile },
      allowInsecureTransport: false,
      reconnect: { enabled: true, maxAttempts: 0, intervalMs: 50, maxIntervalMs: 200 },
      kubernetes: { kubeconfig: kubeconfigFile, inCluster: false, namespace: 'default' },
    },
    { logger: collectLogs().logger('warn'), registry: new Registry() },
  );
  t.after(() => agent.close(300));
  const connected = once(gateway, 'agent-connected');
  await agent.start();
  await connected;
  await waitFor(() => agent.readiness().ready, { timeoutMs: 10_000, what: 'the agent to be ready' });
  return { gatewayUrl: `https://127.0.0.1:${port}`, caFile };
}

test('kubectl get --raw /version works through `pipeops-tunnel proxy`, which exits 0 on SIGTERM', async (t) => {
  const path = await startPath(t);
  const proxy = startCli(
    t,
    ['proxy', '--gateway', path.gatewayUrl, '--cluster', 'c1', '--ca', path.caFile, '--listen', '127.0.0.1:0'],
    cleanEnv({ PIPEOPS_RUNNER_TOKEN: RUNNER_TOKEN }),
  );
  const ready = await proxy.waitFor((r) => typeof r.msg === 'string' && r.msg.startsWith('proxy listening on http://'), 'proxy listening');
  const url = String(ready.url);
  const r = await kubectl(['get', '--raw', '/version'], { kubeconfig: kubeconfigFor({ server: url }) });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  const v = await kubectl(['version', '-o', 'json'], { kubeconfig: kubeconfigFor({ server: url }) });
  assert.match(v.stdout, new RegExp(FAKE_GIT_VERSION.replace(/\./g, '\\.')));
  proxy.child.kill('SIGTERM');
  assert.equal(await proxy.exited, 0);
  assert.ok(!proxy.output().includes(RUNNER_TOKEN), 'the token never reaches a log line');
});

test('a token the gateway refuses makes `proxy` exit 3', async (t) => {
  const path = await startPath(t);
  const r = await runCli(['proxy', '--gateway', path.gatewayUrl, '--cluster', 'c1', '--ca', path.caFile, '--token', 'wrong-token', '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.ok(!r.stdout.includes('wrong-token'));
});

test('proxy without a gateway URL, with a bad --listen or a bad --resume-max-wait exits 2 naming the flag', async () => {
  const noGateway = await runCli(['proxy', '--cluster', 'c1', '--token', 't']);
  assert.equal(noGateway.code, 2);
  assert.match(noGateway.stderr, /--gateway is required/);
  const badListen = await runCli(['proxy', '--gateway', 'https://127.0.0.1:1', '--cluster', 'c1', '--token', 't', '--listen', 'nohost']);
  assert.equal(badListen.code, 2);
  assert.match(badListen.stderr, /--listen must be HOST:PORT/);
  const badWait = await runCli(['proxy', '--gateway', 'https://127.0.0.1:1', '--cluster', 'c1', '--token', 't', '--resume-max-wait', 'soon']);
  assert.equal(badWait.code, 2);
  assert.match(badWait.stderr, /--resume-max-wait must be a duration/);
});

test('--listen accepts HOST:PORT, [v6]:PORT and a bare port', () => {
  assert.deepEqual(parseListen('127.0.0.1:8001'), { host: '127.0.0.1', port: 8001 });
  assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseListen('9000'), { host: '127.0.0.1', port: 9000 });
  assert.throws(() => parseListen('127.0.0.1:70000'), { code: 'PT_ERR_CLI_CONFIG' });
});

test('proxy --help mentions every flag', async () => {
  const r = await runCli(['proxy', '--help']);
  assert.equal(r.code, 0);
  for (const flag of Object.keys(proxyFlags)) assert.match(r.stdout, new RegExp(`--${flag}\\b`));
});

test('kubectl get --raw /version works with the kubeconfig `pipeops-tunnel kubeconfig` prints (the cluster address, tls-server-name), whatever the kubectl version', async (t) => {
  const path = await startPath(t);
  const printed = await runCli(
    ['kubeconfig', '--gateway', path.gatewayUrl, '--cluster', 'c1', '--ca', path.caFile],
    cleanEnv({ PIPEOPS_RUNNER_TOKEN: RUNNER_TOKEN }),
  );
  assert.equal(printed.code, 0, printed.stderr);
  assert.equal(printed.stderr, '', 'no note: the cluster address could be used');
  const cluster = (parse(printed.stdout) as { clusters: Array<{ cluster: Record<string, unknown> }> }).clusters[0]?.cluster;
  assert.equal(cluster?.server, path.gatewayUrl);
  assert.equal(cluster?.['tls-server-name'], 'c1.clusters.localhost');
  // The regression: kubectl < 1.34 drops a server path for --raw; there is none to drop.
  const raw = await kubectl(['get', '--raw', '/version'], { kubeconfig: printed.stdout });
  assert.equal(raw.code, 0, raw.stderr);
  assert.equal((JSON.parse(raw.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  const pods = await kubectl(['get', 'pods', '-o', 'name'], { kubeconfig: printed.stdout });
  assert.equal(pods.code, 0, pods.stderr);
  assert.deepEqual(
    pods.stdout.trim().split('\n'),
    FAKE_POD_NAMES.map((n) => `pod/${n}`),
  );
  const version = await kubectl(['version', '-o', 'json'], { kubeconfig: printed.stdout });
  assert.equal(version.code, 0, version.stderr);
  assert.equal((JSON.parse(version.stdout) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion, FAKE_GIT_VERSION);
  // The path form stays available: there, kubectl < 1.34 needs the prefix in --raw's path.
  const pathForm = await runCli(
    ['kubeconfig', '--gateway', path.gatewayUrl, '--cluster', 'c1', '--ca', path.caFile, '--address', 'path'],
    cleanEnv({ PIPEOPS_RUNNER_TOKEN: RUNNER_TOKEN }),
  );
  assert.equal(pathForm.code, 0, pathForm.stderr);
  const { minor } = await kubectlClientVersion();
  const prefixed = await kubectl(['get', '--raw', minor < 34 ? '/k8s/clusters/c1/version' : '/version'], { kubeconfig: pathForm.stdout });
  assert.equal(prefixed.code, 0, prefixed.stderr);
  assert.equal((JSON.parse(prefixed.stdout) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
});
