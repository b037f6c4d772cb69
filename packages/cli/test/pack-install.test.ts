// The packages as a user gets them: `pnpm pack:all` (tools/pack.ts) builds and packs every
// published package; the tarballs are installed with plain npm into a project
// outside the workspace and globally into a prefix of their own, and there,
// with no TypeScript sources and no workspace links: the library is imported
// from JavaScript and type-checked from a TypeScript consumer; the installed
// `pipeops-tunnel` answers --help and runs a gateway and an agent; and the
// consumer's request, on Node's built-in fetch through the installed library,
// reaches an API server through them.
//
// npm fetches the packages' own dependencies (undici, ws, pino…) from the
// registry: this is the one test that needs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { FAKE_GIT_VERSION, kubeconfigFor, startFakeApiServer, testCertificates } from '@pipeops/tunnel-testkit';
import { ROOT, cleanEnv, startCli, tempDir, writeFile } from './helpers.ts';

const execFileAsync = promisify(execFile);
const AGENT_TOKEN = 'pack-agent-token-0123456789abcdef';
const RUNNER_TOKEN = 'pack-runner-token-0123456789abcdef';
/** Node 24 (this process's) first on PATH: npm's bin links run `#!/usr/bin/env node`. */
const PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;

function sh(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, PATH, npm_config_update_notifier: 'false' } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('the packed packages install with npm outside the workspace: the library imports and type-checks, the command runs a gateway and an agent, and a request goes through', {
  timeout: 600_000,
}, async (t) => {
  const dir = tempDir(t);
  // The root script, as a maintainer runs it: one line per package, `<dir> <tarball>`.
  const packed = sh(process.execPath, [join(ROOT, 'tools', 'pack.ts'), '--out', join(dir, 'tarballs')], ROOT);
  const tarballs = new Map(
    packed
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/) as [string, string]),
  );
  assert.deepEqual([...tarballs.keys()], ['mux', 'protocol', 'agent', 'gateway', 'tunnel-client', 'cli']);
  const all = [...tarballs.values()];

  // A runner project: the library and what it depends on, nothing else of ours.
  const project = join(dir, 'project');
  mkdirSync(project);
  writeFile(project, 'package.json', JSON.stringify({ name: 'runner-project', private: true, type: 'module' }));
  sh('npm', ['install', '--no-audit', '--no-fund', ...['mux', 'protocol', 'tunnel-client'].map((d) => tarballs.get(d)!)], project);

  // (a) JavaScript import, and a TypeScript consumer checked with the library's declarations (skipLibCheck off).
  writeFile(
    project,
    'imports.mjs',
    [
      "import { connect, TunnelDispatcher, clientErrorCodes } from '@pipeops/tunnel-client';",
      'console.log(JSON.stringify({ connect: typeof connect, dispatcher: typeof TunnelDispatcher, codes: Object.keys(clientErrorCodes).length }));',
    ].join('\n'),
  );
  const imported = JSON.parse(sh(process.execPath, ['imports.mjs'], project)) as { connect: string; dispatcher: string; codes: number };
  assert.equal(imported.connect, 'function');
  assert.equal(imported.dispatcher, 'function');
  assert.ok(imported.codes > 0);
  writeFile(
    project,
    'consumer.ts',
    [
      "import { connect, type ConnectOptions, type Tunnel } from '@pipeops/tunnel-client';",
      "const options: ConnectOptions = { gatewayUrl: 'https://gateway.example', token: 't', cluster: 'c1' };",
      'const tunnel: Tunnel = await connect(options);',
      "const res: Response = await tunnel.fetch('/version');",
      "const answer = await tunnel.request({ method: 'GET', path: '/api/v1/namespaces', query: { limit: ['10'] } });",
      'const status: number = answer.status;',
      'console.log(res.status, status, tunnel.kubeConfig().getCurrentCluster()?.server);',
      '// @ts-expect-error: the cluster is required',
      "const missing: ConnectOptions = { gatewayUrl: 'https://gateway.example', token: 't' };",
      'void missing;',
    ].join('\n'),
  );
  writeFile(
    project,
    'tsconfig.json',
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2022'],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')],
      },
      files: ['consumer.ts'],
    }),
  );
  sh(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], project);

  // (b) `npm install -g` of the command (with its sibling tarballs: they are not on the registry).
  const prefix = join(dir, 'global');
  sh('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', ...all], dir);
  const bin = join(prefix, 'bin', 'pipeops-tunnel');
  const help = spawnSync(bin, ['--help'], { encoding: 'utf8', env: { PATH } });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: pipeops-tunnel <command>/);
  assert.match(help.stdout, /connect\s+run the agent/);

  // (c) The installed command as gateway and agent, the installed library as the runner.
  const certs = testCertificates();
  const api = await startFakeApiServer();
  t.after(() => api.close());
  const files = join(dir, 'files');
  mkdirSync(files);
  const ca = writeFile(files, 'ca.pem', certs.caCert);
  const tokens = writeFile(
    files,
    'tokens.yaml',
    [`agents: [{ cluster: c1, token: "${AGENT_TOKEN}" }]`, `runners: [{ id: r1, token: "${RUNNER_TOKEN}", clusters: [c1] }]`, ''].join('\n'),
  );
  const env = cleanEnv({ PATH });
  const gateway = startCli(
    t,
    [
      'gateway',
      '--listen',
      '127.0.0.1:0',
      '--tls-cert',
      writeFile(files, 'tls.crt', certs.cert),
      '--tls-key',
      writeFile(files, 'tls.key', certs.key),
      '--tokens',
      tokens,
    ],
    env,
    [bin],
  );
  const listening = await gateway.waitFor((r) => r.event === 'gateway_listening', 'the installed gateway listening');
  const gatewayUrl = `https://127.0.0.1:${String(listening.port)}`;
  const agentConfig = writeFile(
    files,
    'agent.yaml',
    [
      'agent: { cluster_name: c1, port: 0, listen_host: 127.0.0.1 }',
      `pipeops: { api_url: "${gatewayUrl}", tls: { ca_file: "${ca}" } }`,
      `kubernetes: { kubeconfig: "${writeFile(files, 'kubeconfig.yaml', kubeconfigFor({ server: api.url, token: api.token, caData: api.caCert, namespace: 'default' }))}" }`,
      '',
    ].join('\n'),
  );
  const agent = startCli(t, ['connect', '--config', agentConfig], { ...env, PIPEOPS_PIPEOPS_TOKEN: AGENT_TOKEN }, [bin]);
  await agent.waitFor((r) => r.msg === 'tunnel connected', 'the installed agent connected');

  writeFile(
    project,
    'request.mjs',
    [
      "import { readFileSync } from 'node:fs';",
      "import { connect } from '@pipeops/tunnel-client';",
      "const tunnel = await connect({ gatewayUrl: process.env.GATEWAY_URL, token: process.env.RUNNER_TOKEN, cluster: 'c1', ca: readFileSync(process.env.GATEWAY_CA) });",
      "// Node's built-in fetch, not undici's: a runner project need not install undici.",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the consumer's source, a template literal of its own
      'const res = await fetch(`${tunnel.baseUrl}/version`, { dispatcher: tunnel.dispatcher });',
      'console.log(JSON.stringify({ status: res.status, body: await res.json() }));',
      'await tunnel.close();',
    ].join('\n'),
  );
  // Not spawnSync: the API server answering the agent runs in this process.
  const r = await execFileAsync(process.execPath, ['request.mjs'], {
    cwd: project,
    encoding: 'utf8',
    env: { PATH, GATEWAY_URL: gatewayUrl, RUNNER_TOKEN, GATEWAY_CA: ca },
  });
  const answer = JSON.parse(r.stdout) as { status: number; body: { gitVersion: string } };
  assert.equal(answer.status, 200, `${JSON.stringify(answer.body)}\nagent:\n${agent.output().slice(-4000)}`);
  assert.equal(answer.body.gitVersion, FAKE_GIT_VERSION);
  assert.ok(
    api.requests.some((req) => req.path === '/version' && req.headers.authorization === `Bearer ${api.token}`),
    "the API server saw the agent's credentials",
  );
});
