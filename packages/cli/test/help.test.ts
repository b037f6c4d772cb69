import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectFlags } from '../src/commands/connect.ts';
import { gatewayFlags } from '../src/commands/gateway.ts';
import { COMMANDS } from '../src/usage.ts';
import { runCli } from './helpers.ts';

test('pipeops-tunnel --help lists every command and exits 0', async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0);
  for (const [name] of COMMANDS) assert.match(r.stdout, new RegExp(`^\\s+${name}\\s`, 'm'));
  assert.deepEqual(COMMANDS.map(([c]) => c), ['connect', 'gateway', 'proxy', 'kubeconfig'], 'only commands that exist are listed');
});

test('connect --help mentions every flag of the command', async () => {
  const r = await runCli(['connect', '--help']);
  assert.equal(r.code, 0);
  for (const flag of ['config', 'pipeops-url', 'token', 'cluster-name', 'port', 'kubeconfig', 'in-cluster', 'log-level', 'debug']) {
    assert.ok(flag in connectFlags, `${flag} is a flag`);
  }
  for (const flag of Object.keys(connectFlags)) assert.match(r.stdout, new RegExp(`--${flag}\\b`));
});

test('gateway --help mentions every flag of the command', async () => {
  const r = await runCli(['gateway', '--help']);
  assert.equal(r.code, 0);
  for (const flag of ['config', 'listen', 'tls-cert', 'tls-key', 'tokens', 'dev', 'log-level', 'debug']) {
    assert.ok(flag in gatewayFlags, `${flag} is a flag`);
  }
  for (const flag of Object.keys(gatewayFlags)) assert.match(r.stdout, new RegExp(`--${flag}\\b`));
});

test('--version prints the package version', async () => {
  const r = await runCli(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^pipeops-tunnel \d+\.\d+\.\d+/);
});

test('an unknown command exits 2 with the usage on stderr', async () => {
  const r = await runCli(['teleport']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command teleport[\s\S]*Usage: pipeops-tunnel <command>/);
});
