import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TunnelError } from '@pipeops/tunnel-protocol';
import { TokenStore, bearerToken, hashToken, loadTokensFile } from '../src/index.ts';

test('hashed and plain tokens both verify, each for its own role only', () => {
  const store = new TokenStore({
    agents: [
      { cluster: 'c1', token_sha256: hashToken('agent-secret-1').toUpperCase() },
      { cluster: 'c2', token: 'agent-secret-2' },
    ],
    runners: [
      { id: 'r1', token: 'runner-secret', clusters: ['c1'] },
      { id: 'r2', token_sha256: hashToken('runner-star'), clusters: ['*'] },
    ],
    admins: [{ token: 'admin-secret' }],
  });
  assert.equal(store.verifyAgent('agent-secret-1')?.cluster, 'c1');
  assert.equal(store.verifyAgent('agent-secret-2')?.cluster, 'c2');
  assert.equal(store.verifyAgent('runner-secret'), undefined);
  assert.equal(store.verifyAgent(undefined), undefined);
  assert.equal(store.verifyAgent(''), undefined);
  const r1 = store.verifyRunner('runner-secret');
  assert.equal(r1?.id, 'r1');
  assert.equal(r1?.allClusters, false);
  assert.deepEqual([...(r1?.clusters ?? [])], ['c1']);
  assert.equal(store.verifyRunner('runner-star')?.allClusters, true);
  assert.equal(store.verifyAdmin('admin-secret'), 'admin-0');
  assert.equal(store.verifyAdmin('agent-secret-1'), undefined);
  const id = store.verifyAgent('agent-secret-1')?.tokenId ?? '';
  assert.equal(store.agentStillValid(id, 'c1'), true);
  assert.equal(store.agentStillValid(id, 'c2'), false);
  assert.equal(id.includes('agent-secret'), false);
});

test('invalid entries are rejected with a message naming the entry', () => {
  const cases: [unknown, RegExp][] = [
    [{ agents: [{ cluster: 'c1' }] }, /agents\[0\]: give exactly one of token_sha256 and token/],
    [{ agents: [{ cluster: 'c1', token_sha256: 'abc' }] }, /agents\[0\]: token_sha256 must be 64 hex/],
    [
      {
        agents: [
          { cluster: 'c1', token: 'long-enough-token' },
          { cluster: 'bad name!', token: 'another-token-1' },
        ],
      },
      /agents\[1\]: cluster must be/,
    ],
    [{ runners: [{ id: 'r', token: 'runner-token-x', clusters: 'c1' }] }, /runners\[0\]: clusters must be a list/],
    [{ runners: [{ token: 'runner-token-x', clusters: [] }] }, /runners\[0\]: id must be/],
    [{ admins: [{ token: 'short' }] }, /admins\[0\]: token must be a string of at least 8/],
    [{ agents: [{ cluster: 'c1', token: 'same-token-123' }], admins: [{ token: 'same-token-123' }] }, /admins\[0\]: same token as agents\[0\]/],
    [{ agents: [{ cluster: 'c1', token: 'tok-tok-tok', extra: 1 }] }, /agents\[0\]: unknown key "extra"/],
    [{ agent: [] }, /agent: unknown key/],
    [[1, 2], /top level/],
  ];
  for (const [config, re] of cases) {
    assert.throws(
      () => new TokenStore(config),
      (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_TOKENS_INVALID' && re.test(err.message),
      re.source,
    );
  }
});

test('a YAML tokens file is loaded, and a broken one fails without echoing its content', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pt-tokens-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'tokens.yaml');
  await writeFile(file, `agents:\n  - { cluster: c1, token_sha256: "${hashToken('yaml-agent-token')}" }\nrunners: []\n`);
  assert.equal((await loadTokensFile(file)).verifyAgent('yaml-agent-token')?.cluster, 'c1');
  await writeFile(file, 'agents: [ { cluster: c1, token: "super-secret-value" \n');
  await assert.rejects(
    loadTokensFile(file),
    (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_TOKENS_INVALID' && !err.message.includes('super-secret-value'),
  );
  await assert.rejects(loadTokensFile(join(dir, 'missing.yaml')), (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_TOKENS_INVALID');
});

test('bearerToken extracts the token of a Bearer Authorization header and nothing else', () => {
  assert.equal(bearerToken('Bearer abc.def'), 'abc.def');
  assert.equal(bearerToken('bearer   xyz '), 'xyz');
  assert.equal(bearerToken('Basic dXNlcjpwdw=='), undefined);
  assert.equal(bearerToken('Bearer a b'), undefined);
  assert.equal(bearerToken(undefined), undefined);
});

test('a runner entry may list groups and limits; a bad group, limit or a duplicate id is refused naming the entry', () => {
  const store = new TokenStore({
    runners: [{ id: 'r1', token: 'runner-token-1', clusters: ['c1'], groups: ['team-a', 'system:authenticated'], limits: { max_streams: 5 } }],
  });
  const r = store.verifyRunner('runner-token-1');
  assert.deepEqual(r?.groups, ['team-a', 'system:authenticated']);
  assert.deepEqual(r?.limits, { maxStreams: 5 });
  assert.equal(store.runnerById('r1')?.id, 'r1');
  const bad = (runners: unknown[], why: RegExp): void => assert.throws(() => new TokenStore({ runners }), why);
  bad([{ id: 'r1', token: 'runner-token-1', clusters: ['c1'], groups: ['a,b'] }], /runners\[0\]\.groups/);
  bad([{ id: 'r1', token: 'runner-token-1', clusters: ['c1'], limits: { max_streams: 'many' } }], /runners\[0\].*max_streams/);
  bad([{ id: 'has space', token: 'runner-token-1', clusters: ['c1'] }], /runners\[0\]: id must be/);
  bad(
    [
      { id: 'r1', token: 'runner-token-1', clusters: ['c1'] },
      { id: 'r1', token: 'runner-token-2', clusters: ['c1'] },
    ],
    /runners\[1\]: same id as runners\[0\]/,
  );
});
