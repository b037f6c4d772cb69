// Issue 9: who a runner is at the API server (access_as), what the cluster
// owner allows (the agent's policy), what is recorded (audit), and that one
// stream carries exactly one request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { waitFor } from '@pipeops/tunnel-testkit';
import { startK8sPath, rawExchange } from './k8s-harness.ts';

const PODS = '/api/v1/namespaces/default/pods';
const TOKENS = {
  agents: [{ cluster: 'c1', token: 'kube-path-agent-token-0123456789abcdef' }],
  runners: [{ id: 'r1', token: 'kube-path-runner-token-0123456789abcdef', clusters: ['c1'], groups: ['team-a', 'deployers'] }],
  admins: [{ token: 'kube-path-admin-token-0123456789abcdef' }],
};

test('access_as runner: the API server sees the runner impersonated with its tokens-file groups, the request id as Audit-ID, and the agent credential', async (t) => {
  const p = await startK8sPath(t, { gateway: { tokens: TOKENS }, agent: { kubernetes: { accessAs: 'runner' } } });
  const res = await request(`${p.base}${PODS}`, {
    dispatcher: p.dispatcher,
    headers: { ...p.auth, 'x-pipeops-request-id': 'trace-42', 'audit-id': 'forged-by-runner' },
  });
  assert.equal(res.statusCode, 200);
  await res.body.dump();
  const seen = p.fake.requests.find((r) => r.path === PODS);
  assert.ok(seen !== undefined);
  assert.equal(seen.authorized, true, "the agent's own credential authenticates the agent");
  assert.equal(seen.headers['impersonate-user'], 'pipeops:runner:r1');
  const groups = seen.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1]?.toLowerCase() === 'impersonate-group');
  assert.deepEqual(groups, ['pipeops:runners', 'team-a', 'deployers']);
  assert.equal(seen.headers['audit-id'], 'trace-42', "the gateway's request id, not the runner's own Audit-ID");
  assert.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'audit-id').length, 1);
});

test('access_as agent (the default) sends no impersonation, but still the request id as Audit-ID', async (t) => {
  const p = await startK8sPath(t);
  const res = await request(`${p.base}${PODS}`, { dispatcher: p.dispatcher, headers: p.auth });
  assert.equal(res.statusCode, 200);
  const id = String(res.headers['x-pipeops-request-id']);
  await res.body.dump();
  const seen = p.fake.requests.find((r) => r.path === PODS);
  assert.equal(seen?.headers['impersonate-user'], undefined);
  assert.equal(seen?.headers['audit-id'], id);
});

test('with access_as runner, a stream that names no runner is refused by the agent, never sent as the agent', async (t) => {
  const p = await startK8sPath(t, { agent: { kubernetes: { accessAs: 'runner' } } });
  const stream = await p.gateway.openStream('c1', { kind: 'http', requestId: 'anonymous', cluster: 'c1' });
  const { status, body } = await rawExchange(stream, `GET ${PODS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  assert.equal(status, 403);
  assert.match(body, /names no runner/);
  assert.equal(p.fake.requests.filter((r) => r.path === PODS).length, 0);
});

test("the owner's policy refuses exec, secrets, writes outside its namespaces and cluster-wide lists, each with a 403 naming the rule", async (t) => {
  const audit = join(process.env.TMPDIR ?? '/tmp', `pipeops-audit-${process.pid}-${Date.now()}.jsonl`);
  const p = await startK8sPath(t, {
    agent: { policy: { denySubresources: ['exec'], denyResources: ['secrets'], namespaces: ['default'] }, audit: { file: audit } },
  });
  const call = async (method: string, path: string, body?: string): Promise<{ status: number; message: string }> => {
    const res = await request(`${p.base}${path}`, {
      method: method as 'GET',
      dispatcher: p.dispatcher,
      headers: { ...p.auth, 'content-type': 'application/json' },
      ...(body !== undefined ? { body } : {}),
    });
    const text = await res.body.text();
    return { status: res.statusCode, message: res.statusCode === 403 ? (JSON.parse(text) as { message: string }).message : text };
  };
  const cases: Array<[string, string, string, string | undefined]> = [
    ['exec', 'POST', `${PODS}/web-0/exec?command=sh`, 'deny_subresources'],
    ['get a secret', 'GET', '/api/v1/namespaces/default/secrets/token', 'deny_resources'],
    ['list secrets cluster-wide', 'GET', '/api/v1/secrets', 'deny_resources'],
    ['create outside the namespaces', 'POST', '/api/v1/namespaces/kube-system/configmaps', 'namespaces'],
    ['list pods in every namespace', 'GET', '/api/v1/pods', 'namespaces'],
    ['create a namespace', 'POST', '/api/v1/namespaces', 'namespaces'],
  ];
  for (const [what, method, path, rule] of cases) {
    const r = await call(method, path, method === 'POST' ? '{}' : undefined);
    assert.equal(r.status, 403, `${what}: ${r.message}`);
    assert.match(r.message, new RegExp(`cluster owner's agent policy \\(rule ${rule}\\)`), what);
  }
  assert.equal(
    p.fake.requests.filter((r) => r.path.includes('secrets') || r.path.includes('exec') || r.path.includes('kube-system') || r.path === '/api/v1/pods').length,
    0,
    'nothing the policy refused reached the API server',
  );
  // The gateway's audit records show the agent's decision too (its x-pipeops-denied-by answer header).
  const gatewayDenied = p.gatewayLogs.records.filter((r) => r.event === 'audit' && r.side === 'gateway' && r.decision === 'denied');
  assert.deepEqual(gatewayDenied.map((r) => r.rule).sort(), cases.map(([, , , rule]) => rule).sort());
  const allowed = await call('GET', PODS);
  assert.equal(allowed.status, 200, 'a read in an allowed namespace goes through');
  const metric = await p.agentRegistry.getSingleMetricAsString('pipeops_tunnel_policy_denied_total');
  assert.match(metric, /rule="deny_subresources"} 1$/m);
  assert.match(metric, /rule="deny_resources"} 2$/m);
  assert.match(metric, /rule="namespaces"} 3$/m);
  // The audit file: one JSON line per request, the refusals with their rule, no token anywhere.
  await waitFor(() => readFileSync(audit, 'utf8').trim().split('\n').length >= cases.length + 1, { what: 'the audit records' });
  await p.agent.close(500);
  const text = readFileSync(audit, 'utf8');
  for (const secret of p.secrets) assert.ok(!text.includes(secret), 'a token reached the audit file');
  const records = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const secretRead = records.find((r) => r.resource === 'secrets' && r.name === 'token');
  assert.deepEqual(
    {
      side: secretRead?.side,
      runnerId: secretRead?.runnerId,
      cluster: secretRead?.cluster,
      verb: secretRead?.verb,
      apiGroup: secretRead?.apiGroup,
      namespace: secretRead?.namespace,
      status: secretRead?.status,
      decision: secretRead?.decision,
      rule: secretRead?.rule,
    },
    { side: 'agent', runnerId: 'r1', cluster: 'c1', verb: 'get', apiGroup: '', namespace: 'default', status: 403, decision: 'denied', rule: 'deny_resources' },
  );
  const exec = records.find((r) => r.subresource === 'exec');
  assert.equal(exec?.verb, 'create');
  const ok = records.find((r) => r.path === PODS && r.status === 200);
  assert.deepEqual(
    { verb: ok?.verb, resource: ok?.resource, decision: ok?.decision, rule: ok?.rule },
    { verb: 'list', resource: 'pods', decision: 'allowed', rule: undefined },
  );
  for (const r of records) {
    assert.equal(typeof r.time, 'string');
    assert.equal(typeof r.requestId, 'string');
    assert.equal(typeof r.bytesIn, 'number');
    assert.equal(typeof r.bytesOut, 'number');
    assert.equal(typeof r.ms, 'number');
  }
});

test('the owner policy travels in hello and status reports and /v1/clusters shows it', async (t) => {
  const p = await startK8sPath(t, {
    gateway: { tokens: TOKENS },
    agent: { policy: { readOnly: true, denyResources: ['secrets'] }, kubernetes: { accessAs: 'runner' } },
  });
  const res = await request(`${p.gatewayUrl}/v1/clusters`, { dispatcher: p.dispatcher, headers: { authorization: `Bearer ${TOKENS.admins[0]!.token}` } });
  assert.equal(res.statusCode, 200);
  const body = (await res.body.json()) as { clusters: Array<{ cluster: string; policy?: unknown }> };
  const c1 = body.clusters.find((c) => c.cluster === 'c1');
  assert.deepEqual(c1?.policy, { access_as: 'runner', read_only: true, deny_subresources: [], deny_resources: ['secrets'], namespaces: [] });
});

test('a second request pipelined on one runner stream never reaches the API server: the stream is reset', async (t) => {
  const p = await startK8sPath(t);
  const stream = await p.gateway.openStream('c1', { kind: 'http', requestId: 'pipelined', runnerId: 'r1', cluster: 'c1' });
  const { text } = await rawExchange(stream, `GET ${PODS} HTTP/1.1\r\nHost: x\r\n\r\nDELETE /api/v1/namespaces/default/pods/web-0 HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.ok(!text.includes('HTTP/1.1 200') || !/HTTP\/1\.1 \d{3}[\s\S]*HTTP\/1\.1 \d{3}/.test(text), 'at most one answer');
  await waitFor(() => p.agentLogs.records.some((r) => r.event === 'pipelined_request_refused'), { what: 'the refusal log' });
  assert.equal(p.fake.requests.filter((r) => r.method === 'DELETE').length, 0, 'the pipelined DELETE never reached the API server');
});
