import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectFlags } from '../src/commands/connect.ts';
import { doctorFlags } from '../src/commands/doctor.ts';
import { gatewayFlags } from '../src/commands/gateway.ts';
import { statusFlags } from '../src/commands/status.ts';
import { COMMANDS } from '../src/usage.ts';
import { runCli } from './helpers.ts';

test('pipeops-tunnel --help lists every command and exits 0', async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0);
  for (const [name] of COMMANDS) assert.match(r.stdout, new RegExp(`^\\s+${name}\\s`, 'm'));
  assert.deepEqual(
    COMMANDS.map(([c]) => c),
    ['connect', 'gateway', 'proxy', 'kubeconfig', 'status', 'doctor'],
    'only commands that exist are listed',
  );
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

test('status --help mentions every flag of the command', async () => {
  const r = await runCli(['status', '--help']);
  assert.equal(r.code, 0);
  for (const flag of ['agent', 'gateway', 'token', 'cluster', 'ca', 'insecure-skip-verify', 'output']) assert.ok(flag in statusFlags, `${flag} is a flag`);
  for (const flag of Object.keys(statusFlags)) assert.match(r.stdout, new RegExp(`--${flag}\\b`));
  assert.match(r.stdout, /-o, --output FORMAT/);
});

test('doctor --help mentions every flag of the command, those of both modes', async () => {
  const r = await runCli(['doctor', '--help']);
  assert.equal(r.code, 0);
  for (const flag of [
    'config',
    'pipeops-url',
    'token',
    'cluster-name',
    'kubeconfig',
    'in-cluster',
    'access-as',
    'gateway',
    'cluster',
    'ca',
    'insecure-skip-verify',
    'output',
  ]) {
    assert.ok(flag in doctorFlags, `${flag} is a flag`);
  }
  for (const flag of Object.keys(doctorFlags)) assert.match(r.stdout, new RegExp(`--${flag}\\b`));
});

test('help doctor prints the same as doctor --help', async () => {
  const [viaHelp, viaFlag] = await Promise.all([runCli(['help', 'doctor']), runCli(['doctor', '--help'])]);
  assert.equal(viaHelp.code, 0);
  assert.equal(viaHelp.stdout, viaFlag.stdout);
  assert.match(viaHelp.stdout, /^Usage: pipeops-tunnel doctor/);
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
