import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TunnelError } from '@pipeops/tunnel-protocol';
import { connectFakeAgent, dialAgentSocket, pingEcho } from './helpers/fake-agent.ts';
import { T, startGateway } from './helpers/gateway.ts';

const yamlFor = (agents: [string, string][]): string =>
  `agents:\n${agents.map(([cluster, token]) => `  - cluster: ${cluster}\n    token: "${token}"\n`).join('')}admins:\n  - token: "${T.admin}"\n`;

async function tokensDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pt-gw-tokens-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('editing the tokens file disconnects a revoked agent and keeps the healthy tunnel', async (t) => {
  const dir = await tokensDir(t);
  const file = join(dir, 'tokens.yaml');
  await writeFile(
    file,
    yamlFor([
      ['c1', T.agentC1],
      ['c2', T.agentC2],
    ]),
  );
  const gw = await startGateway(t, { tokensFile: file, tokensReloadDebounceMs: 20 });
  const healthy = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  const revoked = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2 });

  // Write-then-rename, as editors do.
  await writeFile(join(dir, '.tokens.yaml.tmp'), yamlFor([['c1', T.agentC1]]));
  await rename(join(dir, '.tokens.yaml.tmp'), file);

  await revoked.closed;
  assert.ok(revoked.messages.some((m) => m.type === 'error' && m.code === 'PT_ERR_AUTH_REJECTED'));
  assert.deepEqual(
    gw.gateway.clusters().map((c) => c.cluster),
    ['c1'],
  );
  assert.equal(healthy.goAways.length, 0);
  const stream = await gw.gateway.openStream('c1', { kind: 'ping', requestId: 'after-reload' });
  assert.equal((await pingEcho(stream, Buffer.from('alive'))).toString(), 'alive');
  await assert.rejects(dialAgentSocket({ wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC2 }), (err: { status?: number }) => err.status === 401);
  assert.ok(gw.log.records().some((r) => r.event === 'agent_revoked' && r.cluster === 'c2'));
});

test('a tokens file that fails validation keeps the previous tokens and logs an error', async (t) => {
  const dir = await tokensDir(t);
  const file = join(dir, 'tokens.yaml');
  await writeFile(file, yamlFor([['c1', T.agentC1]]));
  const gw = await startGateway(t, { tokensFile: file, tokensReloadDebounceMs: 20 });
  const agent = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });

  await writeFile(file, 'agents:\n  - cluster: c1\n    token_sha256: "not-hex"\n');
  await assert.rejects(
    gw.gateway.reloadTokens(),
    (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_TOKENS_INVALID' && /agents\[0\]/.test(err.message),
  );
  assert.ok(gw.log.records().some((r) => r.event === 'tokens_reload_failed' && r.level === 50));

  // Old tokens still in force: the tunnel stays, and the same token can still connect.
  assert.deepEqual(
    gw.gateway.clusters().map((c) => c.cluster),
    ['c1'],
  );
  assert.equal(agent.goAways.length, 0);
  const again = await connectFakeAgent(t, { wsUrl: gw.wsUrl, ca: gw.ca, token: T.agentC1 });
  assert.equal(again.welcome?.type, 'welcome');
});
