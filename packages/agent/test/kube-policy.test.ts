import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestInfo } from '@pipeops/tunnel-protocol';
import { AgentError } from '../src/errors.ts';
import {
  defaultAgentPolicy,
  evaluatePolicy,
  isOpenPolicy,
  policySummary,
  verifyAgentPolicy,
  type AgentPolicy,
  type EvaluatePolicyOptions,
  type PolicyDecision,
} from '../src/kube/policy.ts';

function decide(policy: AgentPolicy, method: string, target: string, opts?: EvaluatePolicyOptions): PolicyDecision {
  return evaluatePolicy(policy, requestInfo(method, target), opts);
}

type Case = [method: string, target: string, upgrade?: boolean];

function assertAllowed(policy: AgentPolicy, cases: Case[]): void {
  for (const [method, target, upgrade] of cases) {
    assert.deepEqual(
      decide(policy, method, target, { upgrade: upgrade === true }),
      { allowed: true },
      `${method} ${target}${upgrade === true ? ' (upgrade)' : ''}`,
    );
  }
}

function assertRefused(policy: AgentPolicy, rule: string, cases: Case[]): void {
  for (const [method, target, upgrade] of cases) {
    const d = decide(policy, method, target, { upgrade: upgrade === true });
    const label = `${method} ${target}${upgrade === true ? ' (upgrade)' : ''}`;
    assert.equal(d.allowed, false, `${label} is refused`);
    if (d.allowed) continue;
    assert.equal(d.rule, rule, label);
    assert.ok(d.message.startsWith(`forbidden by the cluster owner's agent policy (rule ${rule}): `), d.message);
  }
}

function configError(input: unknown, key: RegExp): void {
  assert.throws(
    () => verifyAgentPolicy(input),
    (err: unknown) => {
      assert.ok(err instanceof AgentError);
      assert.equal(err.code, 'PT_ERR_CONFIG');
      assert.match(err.message, key);
      return true;
    },
    JSON.stringify(input),
  );
}

const everything: Case[] = [
  ['GET', '/api/v1/namespaces/a/secrets'],
  ['POST', '/api/v1/namespaces/a/pods/p/exec?command=sh', true],
  ['DELETE', '/api/v1/namespaces/kube-system'],
  ['POST', '/api/v1/namespaces'],
  ['GET', '/api/v1/nodes/n/proxy/metrics'],
  ['POST', '/logs/anything'],
];

test('an absent policy section is the default policy, which allows everything', () => {
  for (const input of [undefined, null, {}, { read_only: null, deny_resources: null }]) {
    const p = verifyAgentPolicy(input);
    assert.deepEqual({ ...p }, { readOnly: false, denySubresources: [], denyResources: [], namespaces: [] });
    assert.equal(isOpenPolicy(p), true);
    assertAllowed(p, everything);
  }
  assert.equal(isOpenPolicy(defaultAgentPolicy), true);
  assert.ok(Object.isFrozen(defaultAgentPolicy) && Object.isFrozen(defaultAgentPolicy.namespaces));
});

test('verifyAgentPolicy fills defaults, reads snake_case or field names, drops duplicates and freezes the result', () => {
  const p = verifyAgentPolicy({ deny_subresources: ['exec', 'attach', 'exec'], namespaces: ['a'] });
  assert.deepEqual({ ...p }, { readOnly: false, denySubresources: ['exec', 'attach'], denyResources: [], namespaces: ['a'] });
  assert.ok(Object.isFrozen(p) && Object.isFrozen(p.denySubresources));
  const q = verifyAgentPolicy({ readOnly: true, denyResources: ['secrets', 'ingresses.networking.k8s.io'] });
  assert.deepEqual({ ...q }, { readOnly: true, denySubresources: [], denyResources: ['secrets', 'ingresses.networking.k8s.io'], namespaces: [] });
  assert.deepEqual(verifyAgentPolicy(q), q, 'a verified policy verifies again unchanged');
});

test('verifyAgentPolicy names the offending key', () => {
  configError('read-only', /invalid agent option policy: must be a mapping/);
  configError(['exec'], /policy: must be a mapping/);
  configError({ read_only: 'yes' }, /policy\.read_only: must be true or false/);
  configError({ readOnly: 1 }, /policy\.readOnly: must be true or false/);
  configError({ deny_subresources: 'exec' }, /policy\.deny_subresources: must be a list of names/);
  configError({ deny_resources: { secrets: true } }, /policy\.deny_resources: must be a list of names/);
  configError({ namespaces: 'a,b' }, /policy\.namespaces: must be a list of names/);
  configError({ deny_subresources: ['exec', 5] }, /policy\.deny_subresources\[1\]: must be a subresource name/);
  configError({ deny_subresources: ['Exec'] }, /policy\.deny_subresources\[0\]/);
  configError({ deny_resources: ['pods/exec'] }, /policy\.deny_resources\[0\]: .*subresources go in deny_subresources/);
  configError({ deny_resources: ['*'] }, /policy\.deny_resources\[0\]/);
  configError({ deny_resources: ['Secrets'] }, /policy\.deny_resources\[0\]/);
  configError({ namespaces: ['team_a'] }, /policy\.namespaces\[0\]: must be a namespace name, got "team_a"/);
  configError({ namespaces: [''] }, /policy\.namespaces\[0\]/);
  configError({ namespaces: ['a'.repeat(64)] }, /policy\.namespaces\[0\]/);
  configError({ readonly: true }, /policy\.readonly: is not a policy setting/);
  configError({ read_only: true, readOnly: false }, /policy\.read_only: is given twice/);
});

test('read_only allows get, list, watch and non-resource reads', () => {
  const p = verifyAgentPolicy({ read_only: true });
  assertAllowed(p, [
    ['GET', '/api/v1/namespaces/default/pods'],
    ['GET', '/api/v1/namespaces/default/pods/web-0'],
    ['GET', '/api/v1/namespaces/default/pods?watch=1'],
    ['GET', '/api/v1/watch/namespaces/default/pods/web-0'],
    ['GET', '/api/v1/namespaces/default/pods/web-0/log?follow=true'],
    ['HEAD', '/api/v1/nodes'],
    ['GET', '/version'],
    ['HEAD', '/healthz'],
    ['GET', '/apis/apps/v1'],
    ['GET', '/openapi/v3'],
  ]);
});

test('read_only refuses every write with a message naming the rule', () => {
  const p = verifyAgentPolicy({ read_only: true });
  assert.deepEqual(decide(p, 'POST', '/api/v1/namespaces/default/configmaps'), {
    allowed: false,
    rule: 'read_only',
    message: `forbidden by the cluster owner's agent policy (rule read_only): create on configmaps in namespace "default" is not a read`,
  });
  assertRefused(p, 'read_only', [
    ['POST', '/api/v1/namespaces/default/configmaps?dryRun=All'],
    ['PUT', '/api/v1/namespaces/default/configmaps/c'],
    ['PATCH', '/apis/apps/v1/namespaces/default/deployments/d/scale'],
    ['DELETE', '/api/v1/namespaces/default/pods/web-0'],
    ['DELETE', '/api/v1/namespaces/default/pods'],
    ['POST', '/api/v1/namespaces/default/pods/web-0/eviction'],
    ['OPTIONS', '/api/v1/namespaces/default/pods'],
    ['POST', '/logs/x'],
    ['PUT', '/version'],
    ['OPTIONS', '/version'],
  ]);
  const nonResource = decide(p, 'POST', '/logs/x');
  assert.equal(!nonResource.allowed && nonResource.message, `forbidden by the cluster owner's agent policy (rule read_only): POST "/logs/x" is not a read`);
});

test('read_only refuses exec, attach, portforward and proxy even when they arrive as a GET', () => {
  const p = verifyAgentPolicy({ read_only: true });
  assertRefused(p, 'read_only', [
    ['POST', '/api/v1/namespaces/default/pods/web-0/exec?command=sh'],
    ['GET', '/api/v1/namespaces/default/pods/web-0/exec?command=sh', true],
    ['GET', '/api/v1/namespaces/default/pods/web-0/exec?command=sh'],
    ['GET', '/api/v1/namespaces/default/pods/web-0/attach', true],
    ['GET', '/api/v1/namespaces/default/pods/web-0/portforward', true],
    ['GET', '/api/v1/namespaces/default/services/web/proxy/metrics'],
    ['GET', '/api/v1/nodes/n1/proxy/configz'],
    ['GET', '/api/v1/proxy/namespaces/default/services/web/'],
  ]);
  const d = decide(p, 'GET', '/api/v1/namespaces/default/pods/web-0/exec?command=sh', { upgrade: true });
  assert.equal(
    !d.allowed && d.message,
    `forbidden by the cluster owner's agent policy (rule read_only): get on pods/exec "web-0" in namespace "default" (upgrade): exec, attach, portforward, proxy and upgraded connections are never reads`,
  );
});

test('read_only refuses any upgraded request, even a watch or a non-resource GET', () => {
  const p = verifyAgentPolicy({ read_only: true });
  assertRefused(p, 'read_only', [
    ['GET', '/api/v1/namespaces/default/pods?watch=1', true],
    ['GET', '/version', true],
  ]);
});

test('deny_subresources refuses the listed subresources and nothing else', () => {
  const p = verifyAgentPolicy({ deny_subresources: ['exec', 'portforward'] });
  assertRefused(p, 'deny_subresources', [
    ['POST', '/api/v1/namespaces/a/pods/p/exec?command=sh'],
    ['GET', '/api/v1/namespaces/a/pods/p/exec?command=sh', true],
    ['GET', '/api/v1/namespaces/a/pods/p/portforward', true],
    ['GET', '/api/v1/namespaces/a/pods/p/EXEC', true],
    ['POST', '/api/v1/namespaces/a/pods/p/%65xec'],
  ]);
  assertAllowed(p, [
    ['GET', '/api/v1/namespaces/a/pods/p/log'],
    ['GET', '/api/v1/namespaces/a/pods/p/attach', true],
    ['GET', '/api/v1/namespaces/a/pods/exec'],
    ['GET', '/version'],
  ]);
  const d = decide(p, 'POST', '/api/v1/namespaces/a/pods/p/exec');
  assert.equal(
    !d.allowed && d.message,
    `forbidden by the cluster owner's agent policy (rule deny_subresources): create on pods/exec "p" in namespace "a": the subresource "exec" is denied`,
  );
});

test('deny_subresources proxy also refuses the deprecated /proxy/ prefix', () => {
  const p = verifyAgentPolicy({ deny_subresources: ['proxy'] });
  assertRefused(p, 'deny_subresources', [
    ['GET', '/api/v1/nodes/n1/proxy/stats'],
    ['GET', '/api/v1/namespaces/a/services/web/proxy/'],
    ['GET', '/api/v1/proxy/namespaces/a/services/web/x'],
  ]);
});

test('deny_resources secrets refuses get, list and watch of secrets in any namespace and cluster-wide', () => {
  const p = verifyAgentPolicy({ deny_resources: ['secrets'] });
  assertRefused(p, 'deny_resources', [
    ['GET', '/api/v1/namespaces/a/secrets/db'],
    ['GET', '/api/v1/namespaces/kube-system/secrets'],
    ['GET', '/api/v1/namespaces/a/secrets?watch=true'],
    ['GET', '/api/v1/secrets'],
    ['GET', '/api/v1/watch/secrets'],
    ['GET', '/api/v1/secrets?fieldSelector=metadata.name%3Ddb'],
    ['DELETE', '/api/v1/namespaces/a/secrets'],
    ['GET', '/api/v1/namespaces/a/s%65crets/db'],
    ['GET', '/api/v1/namespaces/a/Secrets/db'],
    ['GET', '/apis/example.com/v1/namespaces/a/secrets', false],
  ]);
  assertAllowed(p, [
    ['GET', '/api/v1/namespaces/a/configmaps'],
    ['GET', '/api/v1/namespaces/secrets'],
    ['GET', '/version'],
  ]);
  const d = decide(p, 'GET', '/api/v1/namespaces/a/secrets/db');
  assert.equal(
    !d.allowed && d.message,
    `forbidden by the cluster owner's agent policy (rule deny_resources): get on secrets "db" in namespace "a": the resource "secrets" is denied`,
  );
});

test('deny_resources with a group refuses that resource only in that group', () => {
  const p = verifyAgentPolicy({ deny_resources: ['deployments.apps'] });
  assertRefused(p, 'deny_resources', [
    ['GET', '/apis/apps/v1/namespaces/a/deployments'],
    ['PUT', '/apis/apps/v1/namespaces/a/deployments/d/scale'],
  ]);
  assertAllowed(p, [
    ['GET', '/apis/example.com/v1/namespaces/a/deployments'],
    ['GET', '/apis/apps/v1/namespaces/a/statefulsets'],
  ]);
});

test('namespaces refuses namespaced requests outside the list and allows those inside', () => {
  const p = verifyAgentPolicy({ namespaces: ['a', 'b'] });
  assertAllowed(p, [
    ['GET', '/api/v1/namespaces/a/pods'],
    ['POST', '/api/v1/namespaces/a/configmaps'],
    ['DELETE', '/apis/apps/v1/namespaces/b/deployments/d'],
    ['GET', '/api/v1/namespaces/b/pods/p/exec?command=sh', true],
    ['GET', '/api/v1/namespaces/a/services/web/proxy/'],
  ]);
  assertRefused(p, 'namespaces', [
    ['GET', '/api/v1/namespaces/c/pods'],
    ['GET', '/api/v1/namespaces/kube-system/secrets/x'],
    ['POST', '/api/v1/namespaces/c/pods/p/exec', true],
  ]);
  const d = decide(p, 'GET', '/api/v1/namespaces/c/pods');
  assert.equal(
    !d.allowed && d.message,
    `forbidden by the cluster owner's agent policy (rule namespaces): list on pods in namespace "c": the namespace is not one of the allowed namespaces ("a", "b")`,
  );
});

test('namespaces refuses a request across all namespaces, which reaches namespaces outside the list', () => {
  const p = verifyAgentPolicy({ namespaces: ['a', 'b'] });
  assertRefused(p, 'namespaces', [
    ['GET', '/api/v1/pods'],
    ['GET', '/api/v1/pods?watch=1'],
    ['GET', '/apis/apps/v1/deployments'],
    ['GET', '/api/v1/namespaces//pods'],
    ['DELETE', '/api/v1/pods'],
  ]);
  const d = decide(p, 'GET', '/api/v1/pods');
  assert.equal(
    !d.allowed && d.message,
    `forbidden by the cluster owner's agent policy (rule namespaces): list on pods across all namespaces: only the namespaces "a", "b" are allowed`,
  );
});

test('namespaces allows reading an allowed Namespace object but no writes to Namespaces', () => {
  const p = verifyAgentPolicy({ namespaces: ['a', 'b'] });
  assertAllowed(p, [
    ['GET', '/api/v1/namespaces/a'],
    ['GET', '/api/v1/watch/namespaces/b'],
    ['GET', '/api/v1/namespaces/a/status'],
    ['GET', '/api/v1/namespaces'],
  ]);
  assertRefused(p, 'namespaces', [
    ['GET', '/api/v1/namespaces/c'],
    ['POST', '/api/v1/namespaces'],
    ['DELETE', '/api/v1/namespaces/a'],
    ['PATCH', '/api/v1/namespaces/a'],
    ['PUT', '/api/v1/namespaces/a/finalize'],
  ]);
  const d = decide(p, 'POST', '/api/v1/namespaces');
  assert.equal(
    !d.allowed && d.message,
    `forbidden by the cluster owner's agent policy (rule namespaces): create on namespaces: only reads are allowed on cluster-scoped resources when namespaces are restricted`,
  );
});

test('namespaces allows cluster-scoped reads and non-resource reads, and refuses cluster-scoped writes', () => {
  const p = verifyAgentPolicy({ namespaces: ['a'] });
  assertAllowed(p, [
    ['GET', '/api/v1/nodes'],
    ['GET', '/api/v1/nodes/n1'],
    ['GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles'],
    ['GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions?watch=1'],
    ['GET', '/version'],
    ['GET', '/apis'],
    ['HEAD', '/healthz'],
  ]);
  assertRefused(p, 'namespaces', [
    ['PATCH', '/api/v1/nodes/n1'],
    ['POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings'],
    ['DELETE', '/apis/storage.k8s.io/v1/storageclasses'],
    ['GET', '/api/v1/nodes/n1/proxy/pods'],
    ['POST', '/logs/x'],
  ]);
});

test('namespaces treats an unknown resource without a namespace as all-namespaces unless told it is cluster-scoped', () => {
  const p = verifyAgentPolicy({ namespaces: ['a'] });
  assertRefused(p, 'namespaces', [['GET', '/apis/cert-manager.io/v1/clusterissuers']]);
  const isClusterScoped = (group: string, resource: string): boolean | undefined => (group === 'cert-manager.io' ? resource === 'clusterissuers' : undefined);
  assert.deepEqual(decide(p, 'GET', '/apis/cert-manager.io/v1/clusterissuers', { isClusterScoped }), { allowed: true });
  assert.equal(decide(p, 'GET', '/apis/cert-manager.io/v1/certificates', { isClusterScoped }).allowed, false);
  assert.equal(decide(p, 'GET', '/api/v1/nodes', { isClusterScoped: () => false }).allowed, false);
});

test('rules apply in order read_only, deny_subresources, deny_resources, namespaces', () => {
  const p = verifyAgentPolicy({ read_only: true, deny_subresources: ['log'], deny_resources: ['secrets'], namespaces: ['a'] });
  const rule = (method: string, target: string): string | undefined => {
    const d = decide(p, method, target);
    return d.allowed ? undefined : d.rule;
  };
  assert.equal(rule('POST', '/api/v1/namespaces/c/secrets'), 'read_only');
  assert.equal(rule('GET', '/api/v1/namespaces/c/secrets/s/log'), 'deny_subresources');
  assert.equal(rule('GET', '/api/v1/namespaces/c/secrets'), 'deny_resources');
  assert.equal(rule('GET', '/api/v1/namespaces/c/pods'), 'namespaces');
  assert.equal(rule('GET', '/api/v1/namespaces/a/pods'), undefined);
});

test('isOpenPolicy is false as soon as any rule is set', () => {
  for (const section of [{ read_only: true }, { deny_subresources: ['exec'] }, { deny_resources: ['secrets'] }, { namespaces: ['a'] }]) {
    assert.equal(isOpenPolicy(verifyAgentPolicy(section)), false, JSON.stringify(section));
  }
  assert.equal(isOpenPolicy(verifyAgentPolicy({ read_only: false, namespaces: [] })), true);
});

test('policySummary reports the rules with snake_case keys, as copies', () => {
  const p = verifyAgentPolicy({ read_only: true, deny_subresources: ['exec'], deny_resources: ['secrets'], namespaces: ['a', 'b'] });
  const s = policySummary(p);
  assert.deepEqual(s, { read_only: true, deny_subresources: ['exec'], deny_resources: ['secrets'], namespaces: ['a', 'b'] });
  (s.namespaces as string[]).push('c');
  assert.deepEqual(p.namespaces, ['a', 'b']);
  assert.deepEqual(policySummary(defaultAgentPolicy), { read_only: false, deny_subresources: [], deny_resources: [], namespaces: [] });
});

test('a plain, mutable policy object is evaluated as it is at each call', () => {
  const p: AgentPolicy = { readOnly: false, denySubresources: [], denyResources: [], namespaces: [] };
  assert.equal(decide(p, 'GET', '/api/v1/namespaces/a/secrets').allowed, true);
  p.denyResources.push('secrets');
  assert.equal(decide(p, 'GET', '/api/v1/namespaces/a/secrets').allowed, false);
});

test('refusal messages quote names, so decoded control characters cannot forge a line', () => {
  const p = verifyAgentPolicy({ namespaces: ['a'] });
  const d = decide(p, 'GET', '/api/v1/namespaces/x%0Aforbidden%20by/pods');
  assert.equal(d.allowed, false);
  assert.ok(!d.allowed && !d.message.includes('\n') && d.message.includes('"x\\nforbidden by"'), !d.allowed ? d.message : '');
  const long = decide(p, 'GET', `/api/v1/namespaces/${'n'.repeat(100_000)}/pods`);
  assert.ok(!long.allowed && long.message.length < 1_000);
  const odd = decide(verifyAgentPolicy({ read_only: true }), 'POST', '/api/v1/namespaces/a/con%0Afigmaps');
  assert.ok(!odd.allowed && !odd.message.includes('\n'), !odd.allowed ? odd.message : '');
});
