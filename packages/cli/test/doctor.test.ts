// `pipeops-tunnel doctor` as a child process against real parts: a real
// gateway and a real agent (startKubePath) in front of the testkit's fake API
// server, whose RBAC self-review answers are set per test (setFakeRbac).
// Each failure is provoked for real: a closed port, a broken kubeconfig, a
// wrong token, another CA, a cluster without its agent, rights taken away.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { createAgent } from '@pipeops/tunnel-agent';
import {
  FAKE_GIT_VERSION,
  KUBE_PATH,
  freePort,
  kubeconfigFor,
  setFakeRbac,
  startKubePath,
  testCertificates,
  writeCaFile,
  type FakeRbacRules,
  type KubePath,
} from '@pipeops/tunnel-testkit';
import { cleanEnv, runCli, runCliJson, tempDir, writeFile } from './helpers.ts';

const OTHER_AGENT_TOKEN = 'doctor-c2-agent-token-0123456789abcdef';
const ADMIN_TOKEN = 'doctor-admin-token-0123456789abcdef';

interface Check {
  id: string;
  title: string;
  status: 'pass' | 'warn' | 'fail' | 'skip';
  detail: string;
  fix?: string;
}
interface Report {
  mode: string;
  ok: boolean;
  checks: Check[];
}
type Path = KubePath<ReturnType<typeof createAgent>>;

function startPath(t: TestContext): Promise<Path> {
  return startKubePath(t, {
    createAgent,
    gateway: {
      tokens: {
        agents: [
          { cluster: 'c1', token: KUBE_PATH.agentToken },
          { cluster: 'c2', token: OTHER_AGENT_TOKEN },
        ],
        runners: [{ id: 'r1', token: KUBE_PATH.runnerToken, clusters: ['c1', 'c2'] }],
        admins: [{ token: ADMIN_TOKEN }],
      },
    },
  });
}

/** A port nothing listens on (the test kit's freePort: bound, then released). */
const closedPort = freePort;

/** The agent's config file: the path's gateway and its CA, a kubeconfig for the fake (or `kubeconfig`), plus `extra` sections. */
function agentConfig(
  t: TestContext,
  path: Path,
  o: { apiUrl?: string; caFile?: string; kubeconfig?: string; extra?: Record<string, Record<string, unknown>> } = {},
): string {
  const dir = tempDir(t);
  const kubeconfig = writeFile(
    dir,
    'kubeconfig.yaml',
    o.kubeconfig ?? kubeconfigFor({ server: path.fake.url, token: path.fake.token, caData: path.fake.caCert }),
  );
  const doc: Record<string, Record<string, unknown>> = {
    agent: { cluster_name: 'c1' },
    pipeops: { api_url: o.apiUrl ?? path.gatewayUrl, tls: { ca_file: o.caFile ?? path.gatewayCaFile } },
    kubernetes: { kubeconfig, namespace: 'apps' },
  };
  for (const [section, keys] of Object.entries(o.extra ?? {})) doc[section] = { ...doc[section], ...keys };
  return writeFile(dir, 'agent.yaml', stringify(doc));
}

async function doctor(args: string[], env: Record<string, string>): Promise<{ code: number | null; report: Report; stdout: string; stderr: string }> {
  const { json: report, ...r } = await runCliJson<Report>(['doctor', ...args], env);
  return { ...r, report };
}

function check(report: Report, id: string): Check {
  const c = report.checks.find((x) => x.id === id);
  assert.ok(c !== undefined, `a ${id} check in ${JSON.stringify(report.checks.map((x) => x.id))}`);
  return c;
}

function statuses(report: Report): Record<string, string> {
  return Object.fromEntries(report.checks.map((c) => [c.id, c.status]));
}

function assertNoSecret(out: { stdout: string; stderr: string }, secrets: readonly string[]): void {
  for (const s of secrets) {
    assert.ok(!out.stdout.includes(s), 'no secret on stdout');
    assert.ok(!out.stderr.includes(s), 'no secret on stderr');
  }
}

const agentEnv = (token: string = KUBE_PATH.agentToken): Record<string, string> => ({ PIPEOPS_PIPEOPS_TOKEN: token });

test('doctor passes every agent check against a real gateway and API server, leaves the running agent connected, and prints no secret', async (t) => {
  const path = await startPath(t);
  const config = agentConfig(t, path);
  const r = await doctor(['--config', config], agentEnv());
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.report.mode, 'agent');
  assert.equal(r.report.ok, true);
  assert.deepEqual(statuses(r.report), {
    config: 'pass',
    credentials: 'pass',
    apiserver: 'pass',
    rbac: 'pass',
    proxy: 'pass',
    dns: 'pass',
    tcp: 'pass',
    tls: 'pass',
    clock: 'pass',
    token: 'pass',
  });
  assert.match(check(r.report, 'apiserver').detail, new RegExp(FAKE_GIT_VERSION.replace(/\./g, '\\.')));
  assert.match(check(r.report, 'tls').detail, /trusted \(pipeops\.tls\.ca_file .* \+ system CAs\)/);
  assert.match(check(r.report, 'token').detail, /accepted for cluster c1: the gateway answered 101/);
  assertNoSecret(r, path.secrets);
  // The probe closed after the upgrade, before any hello: the agent that holds c1 was not replaced.
  assert.equal(path.agent.state, 'connected');
  assert.equal(
    path.gatewayLogs.find((rec) => rec.event === 'agent_replaced'),
    undefined,
    'no session was replaced',
  );
  assert.ok(path.gatewayLogs.find((rec) => rec.event === 'agent_handshake_aborted') !== undefined, 'the probe reached the gateway and ended before hello');
});

test('the text output marks each check and ends with the verdict', async (t) => {
  const path = await startPath(t);
  const r = await runCli(['doctor', '--config', agentConfig(t, path), '-o', 'text'], cleanEnv(agentEnv()));
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /^pipeops-tunnel doctor — agent of cluster c1, gateway https:\/\/127\.0\.0\.1:\d+$/m);
  for (const title of ['configuration', 'kube credentials', 'API server', 'RBAC', 'proxy', 'DNS', 'TCP', 'TLS', 'clock', 'token']) {
    assert.match(r.stdout, new RegExp(`^✔ ${title} `, 'm'));
  }
  assert.doesNotMatch(r.stdout, /^[✖!-] /m);
  assert.match(r.stdout, /^every check passed$/m);
});

test('a wrong agent token fails the token check, says it is wrong, revoked or for another cluster, and is never printed', async (t) => {
  const path = await startPath(t);
  const wrong = 'wrong-agent-token-0123456789abcdef';
  const r = await runCli(['doctor', '--config', agentConfig(t, path), '-o', 'text'], cleanEnv(agentEnv(wrong)));
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stdout, /^✖ token +refused: HTTP 401 PT_ERR_AUTH_REJECTED/m);
  assert.match(r.stdout, /→ the token is wrong, revoked or for another cluster/);
  assert.match(r.stdout, /^1 check failed$/m);
  assertNoSecret(r, [wrong, ...path.secrets]);
});

test("another cluster's agent token fails the token check with the gateway's 403", async (t) => {
  const path = await startPath(t);
  const r = await doctor(['--config', agentConfig(t, path)], agentEnv(OTHER_AGENT_TOKEN));
  assert.equal(r.code, 1);
  const token = check(r.report, 'token');
  assert.equal(token.status, 'fail');
  assert.match(token.detail, /HTTP 403 PT_ERR_FORBIDDEN: the agent token does not belong to the cluster/);
  assert.match(token.fix ?? '', /wrong, revoked or for another cluster/);
  assertNoSecret(r, [OTHER_AGENT_TOKEN]);
});

test('an API server that refuses connections fails the API server check naming the address, and the gateway checks still pass', async (t) => {
  const path = await startPath(t);
  const port = await closedPort();
  const r = await doctor(
    [
      '--config',
      agentConfig(t, path, { kubeconfig: kubeconfigFor({ server: `https://127.0.0.1:${String(port)}`, token: path.fake.token, caData: path.fake.caCert }) }),
    ],
    agentEnv(),
  );
  assert.equal(r.code, 1);
  const s = statuses(r.report);
  assert.equal(s.credentials, 'pass');
  assert.equal(s.apiserver, 'fail');
  assert.equal(s.rbac, 'skip');
  assert.equal(s.token, 'pass');
  const api = check(r.report, 'apiserver');
  assert.match(api.detail, new RegExp(`cannot reach https://127\\.0\\.0\\.1:${String(port)}: .*ECONNREFUSED`));
  assert.match(api.fix ?? '', /server URL of the kubeconfig/);
  assertNoSecret(r, path.secrets);
});

test('a kubeconfig without a current context fails the configuration and credentials checks, and the other checks still run', async (t) => {
  const path = await startPath(t);
  const broken = kubeconfigFor({ server: path.fake.url, token: path.fake.token, caData: path.fake.caCert }).replace(/^current-context:.*$/m, '');
  const r = await doctor(['--config', agentConfig(t, path, { kubeconfig: broken })], agentEnv());
  assert.equal(r.code, 1);
  const s = statuses(r.report);
  assert.equal(s.config, 'fail');
  assert.equal(s.credentials, 'fail');
  assert.equal(s.apiserver, 'skip');
  assert.equal(s.token, 'pass', 'the gateway side is checked all the same');
  assert.match(check(r.report, 'config').detail, /kubernetes\.kubeconfig: .*no current-context is set/);
  assert.match(check(r.report, 'credentials').detail, /no current-context is set/);
  assertNoSecret(r, path.secrets);
});

test('a configuration missing its required keys fails the configuration check naming each key and skips the rest', async (t) => {
  const r = await doctor(['--kubeconfig', writeFile(tempDir(t), 'k.yaml', kubeconfigFor({ server: 'https://127.0.0.1:1' }))], {});
  assert.equal(r.code, 1);
  const config = check(r.report, 'config');
  assert.equal(config.status, 'fail');
  for (const key of ['pipeops.api_url', 'pipeops.token', 'agent.cluster_name']) assert.match(config.detail, new RegExp(key.replace(/\./g, '\\.')));
  assert.ok(r.report.checks.filter((c) => c.id !== 'config').every((c) => c.status === 'skip'));
});

test('a gateway certificate from a CA the agent does not trust fails the TLS check, and the token is not sent', async (t) => {
  const path = await startPath(t);
  const otherCa = writeCaFile(tempDir(t), testCertificates('doctor-other-ca'), 'other-ca.pem');
  const before = path.gatewayLogs.records.filter((rec) => rec.event === 'agent_handshake_aborted' || rec.event === 'agent_refused').length;
  const r = await doctor(['--config', agentConfig(t, path, { caFile: otherCa })], agentEnv());
  assert.equal(r.code, 1);
  const tls = check(r.report, 'tls');
  assert.equal(tls.status, 'fail');
  assert.match(tls.detail, /not trusted by pipeops\.tls\.ca_file .*other-ca\.pem/);
  assert.match(tls.fix ?? '', /pipeops\.tls\.ca_file/);
  const token = check(r.report, 'token');
  assert.equal(token.status, 'skip');
  assert.match(token.detail, /not sent/);
  const after = path.gatewayLogs.records.filter((rec) => rec.event === 'agent_handshake_aborted' || rec.event === 'agent_refused').length;
  assert.equal(after, before, 'no tunnel request reached the gateway');
});

test('a gateway that is not listening fails the TCP check as connection refused and skips TLS, clock and token', async (t) => {
  const path = await startPath(t);
  const port = await closedPort();
  const r = await doctor(['--config', agentConfig(t, path, { apiUrl: `https://127.0.0.1:${String(port)}` })], agentEnv());
  assert.equal(r.code, 1);
  const s = statuses(r.report);
  assert.equal(s.apiserver, 'pass');
  assert.equal(s.tcp, 'fail');
  assert.deepEqual([s.tls, s.clock, s.token], ['skip', 'skip', 'skip']);
  assert.match(check(r.report, 'tcp').detail, new RegExp(`connection refused by 127\\.0\\.0\\.1:${String(port)}: nothing listens there`));
});

test('HTTPS_PROXY at a closed port fails the TCP check naming the proxy; NO_PROXY for the gateway makes the connection direct', async (t) => {
  const path = await startPath(t);
  const port = await closedPort();
  const config = agentConfig(t, path);
  const proxied = await doctor(['--config', config], { ...agentEnv(), HTTPS_PROXY: `http://user:proxy-secret-pw@127.0.0.1:${String(port)}` });
  assert.equal(proxied.code, 1);
  assert.match(check(proxied.report, 'proxy').detail, new RegExp(`HTTPS_PROXY applies: through http://\\*\\*\\*@127\\.0\\.0\\.1:${String(port)}`));
  assert.match(check(proxied.report, 'tcp').detail, /cannot reach the proxy .*ECONNREFUSED/);
  assertNoSecret(proxied, ['proxy-secret-pw']);
  const exempt = await doctor(['--config', config], { ...agentEnv(), HTTPS_PROXY: `http://127.0.0.1:${String(port)}`, NO_PROXY: '127.0.0.1' });
  assert.equal(exempt.code, 0, exempt.stdout);
  assert.match(check(exempt.report, 'proxy').detail, /NO_PROXY matches 127\.0\.0\.1: direct connection/);
});

const READS_ONLY: FakeRbacRules = {
  resourceRules: [{ verbs: ['get', 'list', 'watch'], apiGroups: ['*'], resources: ['*'] }],
  nonResourceRules: [{ verbs: ['get'], nonResourceURLs: ['/version', '/readyz'] }],
};

test('RBAC narrower than deploy/kubernetes/agent.yaml is a warning naming what is missing, unless the policy is read-only', async (t) => {
  const path = await startPath(t);
  await setFakeRbac(path.fake, READS_ONLY);
  const r = await doctor(['--config', agentConfig(t, path)], agentEnv());
  assert.equal(r.code, 0, 'warnings do not fail the doctor');
  const rbac = check(r.report, 'rbac');
  assert.equal(rbac.status, 'warn');
  assert.match(rbac.detail, /in namespace apps/);
  assert.match(rbac.detail, /create, update, patch, delete, deletecollection \(writes\) on no resource/);
  for (const sub of ['exec', 'attach', 'portforward']) assert.match(rbac.detail, new RegExp(`create on pods/${sub}`));
  assert.match(rbac.fix ?? '', /policy\.read_only/);
  const readOnly = await doctor(['--config', agentConfig(t, path, { extra: { policy: { read_only: true } } })], agentEnv());
  assert.equal(check(readOnly.report, 'rbac').status, 'pass', check(readOnly.report, 'rbac').detail);
});

test('an agent whose RBAC allows no read at all fails the RBAC check', async (t) => {
  const path = await startPath(t);
  await setFakeRbac(path.fake, { resourceRules: [], nonResourceRules: READS_ONLY.nonResourceRules });
  const r = await doctor(['--config', agentConfig(t, path)], agentEnv());
  assert.equal(r.code, 1);
  const rbac = check(r.report, 'rbac');
  assert.equal(rbac.status, 'fail');
  assert.match(rbac.detail, /can neither get nor list anything in namespace apps/);
  assert.match(rbac.fix ?? '', /deploy\/kubernetes\/agent\.yaml/);
});

test('with access_as: runner the impersonation rights are checked: none fails, the shipped rule passes naming the runner users', async (t) => {
  const path = await startPath(t);
  const config = agentConfig(t, path, { extra: { kubernetes: { access_as: 'runner' } } });
  await setFakeRbac(path.fake, READS_ONLY);
  const denied = await doctor(['--config', config], agentEnv());
  assert.equal(denied.code, 1);
  assert.equal(statuses(denied.report).rbac, undefined, "the agent's own RBAC is not what runners get");
  const imp = check(denied.report, 'impersonation');
  assert.equal(imp.status, 'fail');
  assert.match(imp.detail, /may not impersonate the group pipeops:runners/);
  await setFakeRbac(path.fake, {
    resourceRules: [
      { verbs: ['impersonate'], apiGroups: [''], resources: ['users'], resourceNames: ['pipeops:runner:r1'] },
      { verbs: ['impersonate'], apiGroups: [''], resources: ['groups'], resourceNames: ['pipeops:runners', 'deployers'] },
    ],
    nonResourceRules: READS_ONLY.nonResourceRules,
  });
  const granted = await doctor(['--config', config], agentEnv());
  assert.equal(granted.code, 0, granted.stdout);
  assert.match(check(granted.report, 'impersonation').detail, /may impersonate pipeops:runner:r1 and the group pipeops:runners; groups also: deployers/);
  await setFakeRbac(path.fake, {
    resourceRules: [{ verbs: ['impersonate'], apiGroups: [''], resources: ['groups'], resourceNames: ['pipeops:runners'] }],
    nonResourceRules: READS_ONLY.nonResourceRules,
  });
  const noUsers = await doctor(['--config', config], agentEnv());
  assert.equal(noUsers.code, 1);
  assert.match(check(noUsers.report, 'impersonation').detail, /may impersonate no pipeops:runner:<id> user/);
});

const runnerEnv = (token: string = KUBE_PATH.runnerToken): Record<string, string> => ({ PIPEOPS_RUNNER_TOKEN: token });

test('doctor --gateway --cluster passes for a connected cluster and reads its /version through the gateway, without printing the token', async (t) => {
  const path = await startPath(t);
  const r = await doctor(['--gateway', path.gatewayUrl, '--cluster', 'c1', '--ca', path.gatewayCaFile], runnerEnv());
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.report.mode, 'runner');
  assert.deepEqual(statuses(r.report), {
    proxy: 'pass',
    dns: 'pass',
    tcp: 'pass',
    tls: 'pass',
    clock: 'pass',
    token: 'pass',
    cluster: 'pass',
    version: 'pass',
  });
  assert.match(check(r.report, 'cluster').detail, /connected: agent kube path \(id a1, version 0\.0\.0-test\)/);
  assert.match(check(r.report, 'version').detail, new RegExp(`^${FAKE_GIT_VERSION.replace(/\./g, '\\.')} from /k8s/clusters/c1/version`));
  assertNoSecret(r, path.secrets);
});

test('doctor --gateway for a cluster whose agent is not connected fails the cluster and /version checks with 503', async (t) => {
  const path = await startPath(t);
  const r = await doctor(['--gateway', path.gatewayUrl, '--cluster', 'c2', '--ca', path.gatewayCaFile], runnerEnv());
  assert.equal(r.code, 1);
  assert.equal(check(r.report, 'token').status, 'pass');
  const cluster = check(r.report, 'cluster');
  assert.equal(cluster.status, 'fail');
  assert.match(cluster.detail, /c2 is not among the connected clusters/);
  const version = check(r.report, 'version');
  assert.equal(version.status, 'fail');
  assert.match(version.detail, /cluster c2 is not connected: HTTP 503 ServiceUnavailable/);
});

test('doctor --gateway with a wrong runner token fails the token check with 401 and never prints it', async (t) => {
  const path = await startPath(t);
  const wrong = 'wrong-runner-token-0123456789abcdef';
  const r = await doctor(['--gateway', path.gatewayUrl, '--cluster', 'c1', '--ca', path.gatewayCaFile, '--token', wrong], {});
  assert.equal(r.code, 1);
  const token = check(r.report, 'token');
  assert.equal(token.status, 'fail');
  assert.match(token.detail, /refused: HTTP 401 PT_ERR_AUTH_REJECTED/);
  assert.deepEqual([check(r.report, 'cluster').status, check(r.report, 'version').status], ['skip', 'skip']);
  assertNoSecret(r, [wrong]);
});

test('doctor --gateway without --ca fails the TLS check of a private CA and suggests --ca', async (t) => {
  const path = await startPath(t);
  const r = await doctor(['--gateway', path.gatewayUrl, '--cluster', 'c1'], runnerEnv());
  assert.equal(r.code, 1);
  const tls = check(r.report, 'tls');
  assert.equal(tls.status, 'fail');
  assert.match(tls.fix ?? '', /--ca FILE/);
  assert.equal(check(r.report, 'token').status, 'skip');
});

test('doctor refuses flags of both modes, and an unknown -o, with exit 2', async () => {
  const mixed = await runCli(['doctor', '--gateway', 'https://127.0.0.1:1', '--cluster', 'c1', '--token', 't', '--kubeconfig', '/x']);
  assert.equal(mixed.code, 2);
  assert.match(mixed.stderr, /--kubeconfig is for agent mode/);
  const ca = await runCli(['doctor', '--ca', '/x']);
  assert.equal(ca.code, 2);
  assert.match(ca.stderr, /--ca is for runner mode/);
  const output = await runCli(['doctor', '-o', 'yaml']);
  assert.equal(output.code, 2);
  assert.match(output.stderr, /-o must be json or text, got yaml/);
});
