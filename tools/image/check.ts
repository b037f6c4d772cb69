import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { get } from 'node:https';
import { FAKE_GIT_VERSION, freePort, kubeconfigFor, spawnLogged, startFakeApiServer, testCertificates, type LoggedProcess } from '@pipeops/tunnel-testkit';
import { buildah } from './build.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** chroot by path: the environment the image's processes get has the image's PATH, not ours. */
const CHROOT = ['/usr/sbin/chroot', '/usr/bin/chroot'].find((p) => existsSync(p)) ?? 'chroot';
const AGENT_TOKEN = 'image-agent-token-0123456789abcdef';
const RUNNER_TOKEN = 'image-runner-token-0123456789abcdef';

interface ImageConfig {
  User: string;
  Entrypoint: string[];
  Cmd: string[];
  Env: string[];
  WorkingDir: string;
}

/** A process of the image: its JSON log records, and a wait for one. */
type ImageProcess = LoggedProcess;

function runInImage(rootfs: string, config: ImageConfig, args: string[], env: Record<string, string> = {}): ImageProcess {
  const imageEnv = Object.fromEntries(config.Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  // As a container runtime: the entrypoint, then the arguments given or else the image's default command.
  return spawnLogged(CHROOT, [`--userspec=${config.User}`, rootfs, ...config.Entrypoint, ...(args.length > 0 ? args : config.Cmd)], {
    env: { PATH: '/usr/local/bin', HOME: config.WorkingDir, ...imageEnv, ...env },
    cwd: '/',
  });
}

async function stop(p: ImageProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  await once(p.child, 'exit');
}

export async function checkImage(archive: string): Promise<string[]> {
  const out: string[] = [];
  const ctr = buildah(['from', '--name', `pt-image-check-${process.pid}`, `oci-archive:${archive}`]);
  const imageId = (JSON.parse(buildah(['inspect', '--type', 'container', ctr])) as { FromImageID: string }).FromImageID;
  const running: ImageProcess[] = [];
  const api = await startFakeApiServer();
  try {
    const rootfs = buildah(['mount', ctr]);
    const config = (JSON.parse(buildah(['inspect', '--type', 'container', ctr])) as { OCIv1: { config: ImageConfig } }).OCIv1.config;
    assert.equal(config.User, '1000:1000', 'the image runs as a non-root user');
    assert.deepEqual(config.Cmd, ['connect'], 'the agent is the default command');
    for (const shell of ['bin/sh', 'bin/bash', 'usr/bin/sh', 'bin/busybox']) assert.ok(!existsSync(join(rootfs, shell)), `no shell in the image (${shell})`);
    assert.ok(!readdirSync(rootfs).includes('var'), 'no package manager state in the image');
    out.push(`config: user ${config.User}, entrypoint ${config.Entrypoint.join(' ')}, cmd ${config.Cmd.join(' ')}; no shell`);

    const version = runInImage(rootfs, config, ['--version']);
    await once(version.child, 'exit');
    assert.equal(version.child.exitCode, 0, version.output());
    out.push(`--version: ${version.output().trim()}`);

    // Files the processes read, inside the image's tree (as a volume would put them).
    const files = join(rootfs, 'tmp', 'check');
    mkdirSync(files, { recursive: true });
    const certs = testCertificates();
    const file = (name: string, text: string): string => {
      writeFileSync(join(files, name), text, { mode: 0o644 });
      return `/tmp/check/${name}`;
    };
    const tokens = file('tokens.yaml', `agents: [{ cluster: c1, token: "${AGENT_TOKEN}" }]\nrunners: [{ id: r1, token: "${RUNNER_TOKEN}", clusters: [c1] }]\n`);
    const gatewayPort = await freePort();
    const gateway = runInImage(rootfs, config, [
      'gateway',
      '--listen',
      `127.0.0.1:${gatewayPort}`,
      '--tls-cert',
      file('tls.crt', certs.cert),
      '--tls-key',
      file('tls.key', certs.key),
      '--tokens',
      tokens,
    ]);
    running.push(gateway);
    await gateway.waitFor((r) => r.event === 'gateway_listening', 'the gateway listening', 30_000);
    out.push(`gateway: listening on 127.0.0.1:${gatewayPort}`);
    const ca = file('ca.pem', certs.caCert);
    const agent = runInImage(rootfs, config, [], {
      PIPEOPS_PIPEOPS_API_URL: `https://127.0.0.1:${gatewayPort}`,
      PIPEOPS_PIPEOPS_TOKEN: AGENT_TOKEN,
      PIPEOPS_PIPEOPS_TLS_CA_FILE: ca,
      PIPEOPS_AGENT_CLUSTER_NAME: 'c1',
      PIPEOPS_AGENT_PORT: '0',
      PIPEOPS_AGENT_LISTEN_HOST: '127.0.0.1',
      PIPEOPS_KUBERNETES_KUBECONFIG: file('kubeconfig.yaml', kubeconfigFor({ server: api.url, token: api.token, caData: api.caCert, namespace: 'default' })),
    });
    running.push(agent);
    await agent.waitFor((r) => r.msg === 'tunnel connected', 'the agent connected', 30_000);
    out.push('agent (the default command, configured by environment): tunnel connected');
    const proxyPort = await freePort();
    const proxy = runInImage(
      rootfs,
      config,
      ['proxy', '--gateway', `https://127.0.0.1:${gatewayPort}`, '--cluster', 'c1', '--ca', ca, '--listen', `127.0.0.1:${proxyPort}`],
      { PIPEOPS_RUNNER_TOKEN: RUNNER_TOKEN },
    );
    running.push(proxy);
    await proxy.waitFor((r) => typeof r.msg === 'string' && r.msg.startsWith('proxy listening on'), 'the proxy listening', 30_000);

    // A runner request through all three, and the endpoint directly.
    const viaProxy = await fetch(`http://127.0.0.1:${proxyPort}/version`);
    const body = (await viaProxy.json()) as { gitVersion?: string };
    assert.equal(viaProxy.status, 200);
    assert.equal(body.gitVersion, FAKE_GIT_VERSION);
    const direct = await new Promise<number>((res, rej) => {
      get(`https://127.0.0.1:${gatewayPort}/k8s/clusters/c1/version`, { ca: certs.caCert, headers: { authorization: `Bearer ${RUNNER_TOKEN}` } }, (r) => {
        r.resume();
        res(r.statusCode ?? 0);
      }).on('error', rej);
    });
    assert.equal(direct, 200, 'the gateway endpoint too');
    out.push(`proxy → gateway → agent → API server: /version ${body.gitVersion}`);
    // The allocator the memory figures were measured with (docs/reliability.md, "Memory"): a wrong LD_PRELOAD path is only a warning to ld.so.
    for (const [name, p] of [
      ['gateway', gateway],
      ['agent', agent],
    ] as const) {
      assert.match(readFileSync(`/proc/${p.child.pid}/maps`, 'utf8'), /libjemalloc\.so\.2/, `the ${name} runs on jemalloc`);
    }
    out.push('gateway and agent: jemalloc loaded (LD_PRELOAD)');
    for (const p of running) assert.ok(!p.output().includes(RUNNER_TOKEN) && !p.output().includes(AGENT_TOKEN), 'no token in any log');
    for (const p of running.splice(0).reverse()) {
      await stop(p);
      assert.equal(p.child.exitCode, 0, `a clean exit on SIGTERM:\n${p.output()}`);
    }
    out.push('SIGTERM: every process of the image exited 0');
  } finally {
    for (const p of running) await stop(p).catch(() => {});
    await api.close();
    try {
      buildah(['rm', ctr]);
    } catch {
      /* gone */
    }
    // The image `from` unpacked into buildah's storage (vfs: a full copy) is not kept.
    try {
      buildah(['rmi', '--force', imageId]);
    } catch {
      /* gone */
    }
  }
  return out;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const version = (await import('../../packages/cli/package.json', { with: { type: 'json' } })).default.version;
  const { values } = parseArgs({ options: { archive: { type: 'string', default: join(ROOT, 'dist', 'image', `pipeops-tunnel-${version}.oci.tar`) } } });
  for (const line of await checkImage(resolve(values.archive))) process.stdout.write(`✔ ${line}\n`);
}
