// `pnpm demo`: the whole job on 127.0.0.1 with the real commands, as a user
// would run them: a gateway, an agent that dials out to it, and a cluster the
// runner reaches only through the tunnel — with kubectl, `pipeops-tunnel
// proxy`, @pipeops/tunnel-client and the JSON protocol. Then the gateway is
// killed and restarted (the agent is back within about a second) and both
// shut down cleanly.
//
// The cluster, in this order: `--kubeconfig FILE` uses yours (read-only
// requests only); by default a real kube-apiserver with kwok nodes, built from
// Go modules by the e2e fixture (the first run builds it: minutes, with
// progress; later runs start in seconds); `--stand-in` uses the stand-in API
// server from tools/testkit (a test double: seconds, no Go needed).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { connect } from '@pipeops/tunnel-client';
import { kubeconfigFor, startFakeApiServer, type FakeApiServer } from '@pipeops/tunnel-testkit';
import { ensureBinaries } from '@pipeops/tunnel-e2e/harness/build';
import { startCluster, type Cluster } from '@pipeops/tunnel-e2e/harness/cluster';
import { startFleet } from '@pipeops/tunnel-e2e/harness/fleet';

const BIN = fileURLToPath(new URL('../packages/cli/bin/pipeops-tunnel.js', import.meta.url));
const KUBECTL = process.env.KUBECTL ?? 'kubectl';
const { values: flags } = parseArgs({
  options: { kubeconfig: { type: 'string' }, 'stand-in': { type: 'boolean' }, verbose: { type: 'boolean' }, ha: { type: 'boolean' } },
});
const dir = mkdtempSync(join(tmpdir(), 'pipeops-tunnel-demo-'));
const tokens = { agent: secret(), runner: secret(), admin: secret() };
const children = new Set<ChildProcess>();
let cluster: Cluster | undefined;
const CLUSTER = 'demo-cluster';

function secret(): string {
  return randomBytes(18).toString('base64url');
}
const step = (text: string) => console.log(`\n▶ ${text}`);
const show = (text: string) => console.log(`  ${text.trimEnd().split('\n').join('\n  ')}`);

type LogRecord = Record<string, unknown> & { msg?: string };

/** Runs the CLI; `waitFor` resolves with the first log record (JSON line on stdout) that matches. */
function run(name: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  children.add(child);
  const records: LogRecord[] = [];
  const wakers: Array<() => void> = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (data: string) => {
    const lines = (partial + data).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        records.push(JSON.parse(line) as LogRecord);
      } catch {
        continue;
      }
      if (flags.verbose) console.log(`    [${name}] ${line}`);
    }
    for (const wake of wakers.splice(0)) wake();
  });
  const exited = new Promise<number | null>((done) =>
    child.once('exit', (code) => {
      children.delete(child);
      done(code);
    }),
  );
  async function waitFor(what: string, match: (r: LogRecord) => boolean, timeoutMs = 20_000): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = records.find(match);
      if (found) return found;
      if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}) before: ${what}`);
      if (Date.now() > deadline) throw new Error(`${name}: timed out waiting for ${what}`);
      await new Promise<void>((wake) => {
        wakers.push(wake);
        setTimeout(wake, 200).unref();
      });
    }
  }
  return { child, waitFor, exited };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Asynchronous on purpose: the stand-in API server lives in this process.
async function kubectl(args: string[]): Promise<string> {
  const { code, stdout, stderr } = await kubectlRun(args);
  if (code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${stderr.trim()}`);
  return stdout;
}

/** kubectl that is expected to fail: its error output. */
async function kubectlRefused(args: string[]): Promise<string> {
  const { code, stdout, stderr } = await kubectlRun(args);
  if (code === 0) throw new Error(`kubectl ${args.join(' ')} was expected to be refused, and printed: ${stdout.trim()}`);
  return stderr.trim();
}

async function kubectlRun(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(KUBECTL, args, { env: { PATH: process.env.PATH ?? '', HOME: dir }, timeout: 30_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const [code] = await Promise.race([
    once(child, 'close'),
    once(child, 'error').then(([err]) => {
      throw new Error(`kubectl: ${(err as Error).message} (set KUBECTL=/path/to/kubectl)`);
    }),
  ]);
  return { code: code as number, stdout, stderr };
}

function startGateway(port: number) {
  return run('gateway', ['gateway', '--dev', '--listen', `127.0.0.1:${port}`, '--tokens', join(dir, 'tokens.yaml'), '--config', join(dir, 'gateway.yaml')]);
}

/** The cluster the agent serves: yours (`--kubeconfig`), the stand-in API server, or a real kube-apiserver with kwok. */
async function theCluster(): Promise<{ clusterKubeconfig: string; fake: FakeApiServer | undefined }> {
  step('the cluster');
  let fake: FakeApiServer | undefined;
  let clusterKubeconfig: string;
  if (flags.kubeconfig !== undefined) {
    clusterKubeconfig = resolve(flags.kubeconfig);
    show(`your cluster, from ${clusterKubeconfig}`);
  } else if (flags['stand-in'] !== true) {
    show('a real kube-apiserver (kubesim: kube-apiserver + etcd built from Go modules) with a kwok node');
    show('(the first run builds it, several minutes; `pnpm demo --stand-in` skips that)');
    const bin = await ensureBinaries();
    mkdirSync(join(dir, 'logs'));
    mkdirSync(join(dir, 'home'));
    cluster = await startCluster({
      kubesim: bin.kubesim,
      kubectl: bin.kubectl,
      kwok: bin.kwok,
      dir: join(dir, 'cluster'),
      logDir: join(dir, 'logs'),
      home: join(dir, 'home'),
    });
    clusterKubeconfig = cluster.adminKubeconfig;
    const pod = await cluster.admin(['apply', '-f', '-'], readFileSync(fileURLToPath(new URL('../e2e/kwok/pod.yaml', import.meta.url)), 'utf8'));
    if (pod.code !== 0) throw new Error(`creating the demo pod failed: ${pod.stderr}`);
    show(`API server ${cluster.url}, node ${cluster.nodeName}, pod web; nothing but the agent has its address or credentials`);
  } else {
    fake = await startFakeApiServer();
    clusterKubeconfig = join(dir, 'cluster.kubeconfig');
    writeFileSync(clusterKubeconfig, kubeconfigFor({ server: fake.url, token: fake.token, caData: fake.caCert, namespace: 'default' }));
    show(`a stand-in API server at ${fake.url} (tools/testkit; run \`pnpm demo --kubeconfig FILE\` for a real cluster)`);
    show('nothing but the agent has its address or its credentials');
  }
  return { clusterKubeconfig, fake };
}

async function main(): Promise<void> {
  const { clusterKubeconfig, fake } = await theCluster();
  writeFileSync(
    join(dir, 'tokens.yaml'),
    [
      `agents:  [{ cluster: ${CLUSTER}, token: "${tokens.agent}" }]`,
      `runners: [{ id: demo-runner, token: "${tokens.runner}", clusters: [${CLUSTER}] }]`,
      `admins:  [{ token: "${tokens.admin}" }]`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'gateway.yaml'), `gateway:\n  state_dir: ${join(dir, 'state')}\n  drain_timeout: 5s\n`);

  step('gateway: pipeops-tunnel gateway --dev --listen 127.0.0.1:0 --tokens tokens.yaml');
  let gateway = startGateway(0);
  const gatewayUrl = String((await gateway.waitFor('listening', (r) => typeof r.url === 'string')).url);
  const caFile = String((await gateway.waitFor('dev CA', (r) => typeof r.caFile === 'string')).caFile);
  const ca = readFileSync(caFile, 'utf8');
  show(`listening on ${gatewayUrl}; self-signed CA at ${caFile}`);

  step('agent: pipeops-tunnel connect --kubeconfig … (dials out over wss://; token from PIPEOPS_PIPEOPS_TOKEN)');
  writeFileSync(
    join(dir, 'agent.yaml'),
    [
      'agent:',
      `  cluster_name: ${CLUSTER}`,
      '  name: demo-agent',
      '  port: 0',
      '  listen_host: 127.0.0.1',
      '  poll_interval: 2s',
      '  labels: { environment: demo }',
      'pipeops:',
      `  api_url: ${gatewayUrl}`,
      '  tls:',
      `    ca_file: ${caFile}`,
      '  reconnect: { interval: 200ms, max_interval: 1s }',
      'kubernetes:',
      `  kubeconfig: ${clusterKubeconfig}`,
      "# the cluster owner's policy: the control plane cannot override it",
      'policy:',
      '  deny_resources: [secrets]',
      '',
    ].join('\n'),
  );
  const agent = run('agent', ['connect', '--config', join(dir, 'agent.yaml')], { PIPEOPS_PIPEOPS_TOKEN: tokens.agent });
  const health = await agent.waitFor('health listener', (r) => typeof r.msg === 'string' && r.msg.startsWith('health listener on'));
  const healthUrl = `http://${String(health.msg).slice('health listener on '.length)}`;
  const ready = await until('agent /ready', async () => {
    const res = await fetch(`${healthUrl}/ready`);
    return res.status === 200 ? res.json() : undefined;
  });
  show(`agent ${healthUrl}/ready → 200 ${JSON.stringify(ready)}`);

  step(`GET ${gatewayUrl}/v1/clusters (admin token)`);
  const clusters = await until('the cluster with its API server version', async () => {
    const body = JSON.parse(await httpsGet(`${gatewayUrl}/v1/clusters`, tokens.admin, ca));
    const c = body.clusters?.[0];
    return c?.lastStatus?.apiServer?.version !== undefined ? body.clusters : undefined;
  });
  for (const c of clusters) {
    show(
      `cluster ${c.cluster}: agent ${c.name} v${c.version}, rtt ${Number(c.rttMs).toFixed(2)} ms, API server ${c.lastStatus.apiServer.version} reachable=${c.lastStatus.apiServer.reachable}`,
    );
  }

  step(`kubectl through the gateway: pipeops-tunnel kubeconfig --gateway ${gatewayUrl} --cluster ${CLUSTER} …`);
  const runnerKubeconfig = join(dir, 'runner.kubeconfig');
  const printed = run('kubeconfig', ['kubeconfig', '--gateway', gatewayUrl, '--cluster', CLUSTER, '--ca', caFile], { PIPEOPS_RUNNER_TOKEN: tokens.runner });
  const kubeconfigText = await readAll(printed.child);
  writeFileSync(runnerKubeconfig, kubeconfigText);
  show(`server: ${/server: (.*)/.exec(kubeconfigText)?.[1] ?? '?'}, tls-server-name: ${/tls-server-name: (.*)/.exec(kubeconfigText)?.[1] ?? '(none)'}`);
  show(`$ kubectl version\n${await kubectl(['--kubeconfig', runnerKubeconfig, 'version'])}`);
  show(`$ kubectl get pods\n${await kubectl(['--kubeconfig', runnerKubeconfig, 'get', 'pods', ...(fake ? [] : ['-A'])])}`);

  step("the trust boundary: a runner cannot pick its identity, and the cluster owner's policy (deny_resources: [secrets]) holds");
  show(`$ kubectl --as=jane get pods\n${await kubectlRefused(['--kubeconfig', runnerKubeconfig, '--as=jane', 'get', 'pods'])}`);
  const secrets = JSON.parse(await httpsGet(`${gatewayUrl}/k8s/clusters/${CLUSTER}/api/v1/namespaces/default/secrets`, tokens.runner, ca)) as {
    code: number;
    message: string;
  };
  show(`GET /k8s/clusters/${CLUSTER}/api/v1/namespaces/default/secrets → ${secrets.code}: ${secrets.message}`);
  const denied = await agent.waitFor('the audit record of the refusal', (r) => r.event === 'audit' && r.decision === 'denied' && r.rule === 'deny_resources');
  show(
    `agent audit record: ${JSON.stringify({ runnerId: denied.runnerId, verb: denied.verb, resource: denied.resource, namespace: denied.namespace, status: denied.status, decision: denied.decision, rule: denied.rule, requestId: denied.requestId })}`,
  );
  const policy = JSON.parse(await httpsGet(`${gatewayUrl}/v1/clusters`, tokens.admin, ca)).clusters?.[0]?.policy;
  show(`/v1/clusters policy: ${JSON.stringify(policy)}`);

  step('pipeops-tunnel proxy --listen 127.0.0.1:0 (like kubectl proxy, through the tunnel)');
  const proxy = run('proxy', ['proxy', '--gateway', gatewayUrl, '--cluster', CLUSTER, '--ca', caFile, '--listen', '127.0.0.1:0'], {
    PIPEOPS_RUNNER_TOKEN: tokens.runner,
  });
  const proxyUrl = String((await proxy.waitFor('proxy listening', (r) => typeof r.url === 'string')).url);
  show(`$ kubectl --server ${proxyUrl} get --raw /version\n${await kubectl(['--server', proxyUrl, 'get', '--raw', '/version'])}`);

  step('@pipeops/tunnel-client: connect(), request(), watch()');
  const tunnel = await connect({ gatewayUrl, token: tokens.runner, cluster: CLUSTER, ca });
  try {
    const list = await tunnel.request({ method: 'GET', path: '/api/v1/namespaces/default/pods' });
    const names = ((list.body as { items?: Array<{ metadata: { name: string } }> }).items ?? []).map((p) => p.metadata.name);
    show(`request GET /api/v1/namespaces/default/pods → ${list.status}, pods: ${names.join(', ') || '(none)'}`);
    if (cluster) {
      const events = tunnel.watch('/api/v1/namespaces/default/configmaps');
      const next = events[Symbol.asyncIterator]();
      const name = `demo-${Date.now()}`;
      // The watch starts with the existing objects; skip to the one created here.
      const seen = (async () => {
        for (let r = await next.next(); !r.done; r = await next.next()) {
          const ev = r.value as { type: string; object: { metadata: { name: string } } };
          if (ev.object.metadata.name === name) return { ev, at: performance.now() };
        }
        throw new Error('watch ended');
      })();
      const sentAt = performance.now();
      const created = await tunnel.request({
        method: 'POST',
        path: '/api/v1/namespaces/default/configmaps',
        body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { hello: 'tunnel' } },
      });
      const { ev, at } = await seen;
      show(
        `request POST configmaps/${name} → ${created.status}; watch → ${ev.type} ${ev.object.metadata.name}, ${(at - sentAt).toFixed(1)} ms after the POST was sent`,
      );
      await next.return?.(undefined);
      show(`$ kubectl logs web\n${await kubectl(['--kubeconfig', join(dir, 'runner.kubeconfig'), 'logs', 'web'])}`);
      show(
        `$ kubectl exec web -- echo hello from the pod\n${await kubectl(['--kubeconfig', join(dir, 'runner.kubeconfig'), 'exec', 'web', '--', 'echo', 'hello from the pod'])}`,
      );
    } else if (fake) {
      const events = tunnel.watch('/api/v1/namespaces/default/pods');
      const first = events[Symbol.asyncIterator]().next();
      await fake.watch.waitForWatchers(1);
      const emittedAt = performance.now();
      fake.watch.emit({ kind: 'Pod', metadata: { name: 'demo-pod', namespace: 'default' } });
      const ev = (await first).value as { type: string; object: { metadata: { name: string } } };
      show(`watch → ${ev.type} ${ev.object.metadata.name}, ${(performance.now() - emittedAt).toFixed(1)} ms after the API server sent it`);
      await events.return?.(undefined);
    }
  } finally {
    await tunnel.close();
  }

  step('the JSON message protocol of the original VM agent: wss://…/ws/k8s');
  const reply = await jsonProtocolRequest(gatewayUrl, ca, { id: 'demo-1', method: 'GET', path: '/version' });
  show(`→ {"id":"${reply.id}","status":${reply.status},"body":${JSON.stringify(reply.body)}}`);

  step('resilience: SIGKILL the gateway, start it again on the same port');
  gateway.child.kill('SIGKILL');
  await gateway.exited;
  await until('the agent to notice', async () => ((await fetch(`${healthUrl}/ready`)).status === 503 ? true : undefined));
  show('agent /ready → 503 while the gateway is down');
  gateway = startGateway(Number(new URL(gatewayUrl).port));
  await gateway.waitFor('listening', (r) => typeof r.url === 'string');
  const restartedAt = performance.now();
  await until('the agent to be ready again', async () => ((await fetch(`${healthUrl}/ready`)).status === 200 ? true : undefined));
  show(`agent ready again ${(performance.now() - restartedAt).toFixed(0)} ms after the gateway listened`);
  show(
    `$ kubectl get --raw /version   # the cluster's own address (tls-server-name): no path for kubectl < 1.34 to drop\n${await kubectl(['--kubeconfig', runnerKubeconfig, 'get', '--raw', '/version'])}`,
  );

  step('graceful shutdown: SIGTERM to proxy, agent and gateway');
  for (const [name, p] of [
    ['proxy', proxy],
    ['agent', agent],
    ['gateway', gateway],
  ] as const) {
    p.child.kill('SIGTERM');
    show(`${name} exited with code ${await p.exited}`);
  }
  await fake?.close();
  await cluster?.close();
  console.log('\n✔ demo complete');
}

async function readAll(child: ChildProcess): Promise<string> {
  let text = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    text += d;
  });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`command exited with ${code}`);
  return text;
}

async function httpsGet(url: string, token: string, ca: string): Promise<string> {
  const { request } = await import('node:https');
  return new Promise((done, fail) => {
    request(url, { headers: { authorization: `Bearer ${token}` }, ca }, (res) => {
      let text = '';
      res
        .setEncoding('utf8')
        .on('data', (d: string) => {
          text += d;
        })
        .on('end', () => done(text));
    })
      .on('error', fail)
      .end();
  });
}

async function jsonProtocolRequest(gatewayUrl: string, ca: string, message: Record<string, unknown>): Promise<Record<string, unknown>> {
  const ws = new WebSocket(`${gatewayUrl.replace(/^https/, 'wss')}/ws/k8s?cluster=${CLUSTER}`, { ca, headers: { authorization: `Bearer ${tokens.runner}` } });
  try {
    await once(ws, 'open');
    ws.send(JSON.stringify(message));
    const [data] = await once(ws, 'message');
    return JSON.parse(String(data)) as Record<string, unknown>;
  } finally {
    ws.close();
  }
}

/**
 * `pnpm demo --ha`: the gateway as three replicas on Redis behind HAProxy
 * (Debian's redis-server and haproxy), the agent dialing the load balancer;
 * kubectl through a replica that does not hold the tunnel; then a rolling
 * restart of every replica while kubectl runs in a loop through the load
 * balancer.
 */
async function mainHa(): Promise<void> {
  const { clusterKubeconfig, fake } = await theCluster();
  step('three gateway replicas (pipeops-tunnel gateway --redis-url … --advertise-url … --replica-secret-file …) on redis-server, behind HAProxy');
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const fleet = await startFleet({ dir, logDir: join(dir, 'logs'), cluster: CLUSTER, agentKubeconfig: clusterKubeconfig, replicas: 3 });
  try {
    show(`replicas ${fleet.replicaUrls.join(', ')}; load balancer ${fleet.lbUrl} (TCP pass-through, /ready health checks)`);
    step('the agent dialed the load balancer; every replica knows who holds the tunnel');
    for (const r of fleet.replicaUrls) {
      const listed = JSON.parse(await httpsGet(`${r}/v1/clusters`, fleet.adminToken, fleet.caCert)) as {
        clusters: Array<{ cluster: string; replica: { url: string } }>;
      };
      show(`GET ${r}/v1/clusters → ${listed.clusters.map((c) => `${c.cluster} held by ${c.replica.url}`).join(', ')}`);
    }
    const held = await fleet.owner();
    const other = fleet.replicaUrls.find((u) => u !== held) ?? fleet.lbUrl;
    step(`kubectl through ${other}, a replica without the tunnel (forwarded to ${held} over a replica link)`);
    show(`$ kubectl get pods\n${await kubectl(['--kubeconfig', fleet.runnerKubeconfig(other), 'get', 'pods', ...(fake ? [] : ['-A'])])}`);

    step('rolling restart: each replica in turn gets SIGTERM, drains, and starts again, while kubectl runs in a loop through the load balancer');
    const viaLb = fleet.runnerKubeconfig(fleet.lbUrl);
    const runs: Array<{ ok: boolean; err: string }> = [];
    let rolling = true;
    const loop = (async () => {
      while (rolling) {
        const r = await kubectlRun(['--kubeconfig', viaLb, 'get', 'pods', '-o', 'name', ...(fake ? [] : ['-A'])]);
        runs.push({ ok: r.code === 0, err: r.stderr.trim() });
      }
    })();
    for (let i = 0; i < fleet.replicaUrls.length; i++) {
      const before = await fleet.owner();
      const code = await fleet.roll(i);
      show(
        `replica ${fleet.replicaUrls[i]} drained (exit ${code}) and is back; the tunnel was on ${before}, now on ${await fleet.owner()}; ${runs.length} kubectl runs so far`,
      );
    }
    const atEnd = runs.length;
    await until('kubectl after the roll', async () => (runs.length >= atEnd + 2 ? true : undefined), 60_000);
    rolling = false;
    await loop;
    const failed = runs.filter((r) => !r.ok);
    show(
      `${runs.length} kubectl runs through the load balancer during the rolling restart, ${failed.length} failed${failed.length > 0 ? `: ${failed.map((f) => f.err).join(' / ')}` : ''}`,
    );
    if (failed.length > 0) throw new Error('kubectl failed during the rolling restart');
  } finally {
    step('shutdown');
    await fleet.close();
    await fake?.close();
    await cluster?.close();
  }
  console.log('\n✔ HA demo complete');
}

try {
  await (flags.ha === true ? mainHa() : main());
} catch (err) {
  console.error(`\n✘ demo failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  for (const child of children) child.kill('SIGKILL');
  await cluster?.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
