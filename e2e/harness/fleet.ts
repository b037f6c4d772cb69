// The gateway as a fleet in front of the real kube-apiserver: `replicas`
// `pipeops-tunnel gateway` processes sharing a real redis-server, a real
// HAProxy in front of them (TCP pass-through, /ready health checks, `balance
// first`), and one `pipeops-tunnel connect` agent that dials the load
// balancer. A replica can be rolled (SIGTERM, wait, start again on its port)
// or killed. {@link startReplicas} is the fleet without the agent (the
// bench's 1,000 agents bring their own).
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, startHaproxy, startRedisServer, testCertificates, type Haproxy, type HaproxyOptions, type RedisServer } from '@pipeops/tunnel-testkit';
import { start, until, type Proc } from './proc.ts';
import { CLI } from './paths.ts';
import { writeKubeconfig } from './tunnel.ts';

/** `replicas` gateway processes on one Redis behind HAProxy, without agents. */
export interface ReplicaSet {
  /** The load balancer, `https://127.0.0.1:PORT`. */
  lbUrl: string;
  /** Each replica's own address. */
  replicaUrls: string[];
  redis: RedisServer;
  /** The admin token of the tokens file (for `/v1/clusters`). */
  adminToken: string;
  /** PEM of the CA every replica's certificate is signed by, and its file. */
  caCert: string;
  caFile: string;
  /** Where the certificates, tokens file and the load balancer's config are. */
  dir: string;
  /** The process of replica `i` now (a new one after each start). */
  replica(i: number): Proc;
  /** SIGKILL replica `i` and wait until it is gone. */
  kill(i: number): Promise<void>;
  /** Start replica `i` again on its port (after kill or a SIGTERM) and wait until it is ready. */
  restart(i: number): Promise<void>;
  /** SIGTERM replica `i`, wait for it to exit (its code), start it again on the same port, wait until it is ready. */
  roll(i: number): Promise<number | null>;
  close(): Promise<void>;
}

export interface ReplicaSetOptions {
  dir: string;
  logDir: string;
  replicas: number;
  /** The tokens file's `agents` and `runners` (an admin token is added). */
  agents: Array<{ cluster: string; token: string }>;
  runners: Array<{ id: string; token: string; clusters: string[] }>;
  /** The load balancer's policy. Default `first`. */
  balance?: HaproxyOptions['balance'];
}

export interface Fleet {
  /** The load balancer, `https://127.0.0.1:PORT`. */
  lbUrl: string;
  /** Each replica's own address. */
  replicaUrls: string[];
  cluster: string;
  /** The admin token of the fleet's tokens file (for `/v1/clusters`). */
  adminToken: string;
  /** PEM of the CA every replica's certificate is signed by. */
  caCert: string;
  /** A runner kubeconfig file for `server` (the load balancer or a replica): `/k8s/clusters/<cluster>` with the runner token. */
  runnerKubeconfig(server: string): string;
  /** The replica holding the cluster's tunnel (its URL), from `/v1/clusters`. */
  owner(): Promise<string | undefined>;
  /** SIGTERM replica `i`, wait for it to exit (its code), start it again on the same port, wait until it is ready. */
  roll(i: number): Promise<number | null>;
  close(): Promise<void>;
}

export interface FleetOptions {
  dir: string;
  logDir: string;
  cluster: string;
  agentKubeconfig: string;
  replicas: number;
}

const secret = (): string => randomBytes(24).toString('base64url');

type Closers = { closers: Array<() => unknown>; after(fn: () => unknown): void; close(): Promise<void> };
function closers(): Closers {
  const list: Array<() => unknown> = [];
  return {
    closers: list,
    after: (fn) => {
      list.unshift(fn);
    },
    close: async () => {
      for (const fn of list.splice(0)) await Promise.resolve(fn()).catch(() => {});
    },
  };
}

export async function startReplicas(o: ReplicaSetOptions): Promise<ReplicaSet> {
  const hooks = closers();
  try {
    const dir = join(o.dir, 'fleet');
    mkdirSync(dir, { recursive: true });
    const certs = testCertificates();
    const file = (name: string, text: string): string => {
      const p = join(dir, name);
      writeFileSync(p, text, { mode: 0o600 });
      return p;
    };
    const [certFile, keyFile, caFile] = [file('tls.crt', certs.cert), file('tls.key', certs.key), file('ca.pem', certs.caCert)];
    const adminToken = secret();
    const tokensFile = file('tokens.yaml', stringify({ agents: o.agents, runners: o.runners, admins: [{ token: adminToken }] }));
    const secretFile = file('replica-secret', `${secret()}\n`);
    const redis = await startRedisServer(hooks);
    const ports: number[] = [];
    for (let i = 0; i < o.replicas; i++) ports.push(await freePort());
    const url = (port: number): string => `https://127.0.0.1:${port}`;
    const replicas: Proc[] = [];
    let generation = 0;
    const launch = async (i: number): Promise<void> => {
      generation += 1;
      const proc = start(
        `fleet-gateway-${i}-${generation}`,
        process.execPath,
        [
          CLI,
          'gateway',
          '--listen',
          `127.0.0.1:${ports[i]}`,
          '--tls-cert',
          certFile,
          '--tls-key',
          keyFile,
          '--tokens',
          tokensFile,
          '--redis-url',
          redis.url,
          '--advertise-url',
          url(ports[i]!),
          '--replica-secret-file',
          secretFile,
        ],
        { logDir: o.logDir, env: { ...process.env, PIPEOPS_GATEWAY_REPLICA_CA_FILE: caFile, PIPEOPS_GATEWAY_DRAIN_TIMEOUT: '10s' } },
      );
      replicas[i] = proc;
      hooks.after(() => proc.stop('SIGKILL', 1_000));
      await proc.waitForRecord('fleet registry ready', (r) => r.event === 'fleet_registry_ready', 30_000);
    };
    const ready = (i: number): Promise<unknown> =>
      until(
        `replica ${i} ready`,
        async () => ((await httpsGet(`${url(ports[i]!)}/ready`, certs.caCert).catch(() => '')).includes('"ready"') ? true : undefined),
        30_000,
        50,
      );
    for (let i = 0; i < o.replicas; i++) await launch(i);
    const lb: Haproxy = await startHaproxy(hooks, { dir, backends: ports, ...(o.balance !== undefined ? { balance: o.balance } : {}) });
    const restart = async (i: number): Promise<void> => {
      await launch(i);
      await ready(i);
    };
    return {
      lbUrl: lb.url,
      replicaUrls: ports.map(url),
      redis,
      adminToken,
      caCert: certs.caCert,
      caFile,
      dir,
      replica: (i) => replicas[i]!,
      async kill(i) {
        replicas[i]!.child.kill('SIGKILL');
        await replicas[i]!.exited;
      },
      restart,
      async roll(i) {
        const old = replicas[i]!;
        old.child.kill('SIGTERM');
        const code = await old.exited;
        await restart(i);
        return code;
      },
      close: () => hooks.close(),
    };
  } catch (err) {
    await hooks.close();
    throw err;
  }
}

export async function startFleet(o: FleetOptions): Promise<Fleet> {
  const hooks = closers();
  try {
    const tokens = { agent: secret(), runner: secret() };
    const set = await startReplicas({
      dir: o.dir,
      logDir: o.logDir,
      replicas: o.replicas,
      agents: [{ cluster: o.cluster, token: tokens.agent }],
      runners: [{ id: 'fleet-runner', token: tokens.runner, clusters: [o.cluster] }],
    });
    hooks.after(() => set.close());
    const dir = set.dir;
    const agentConfig = join(dir, 'agent.yaml');
    writeFileSync(
      agentConfig,
      stringify({
        agent: { cluster_name: o.cluster, name: 'fleet-agent', port: 0, listen_host: '127.0.0.1', poll_interval: '5s' },
        pipeops: { api_url: set.lbUrl, tls: { ca_file: set.caFile }, reconnect: { interval: '200ms', max_interval: '1s' } },
        kubernetes: { kubeconfig: o.agentKubeconfig },
      }),
      { mode: 0o600 },
    );
    const agent = start('fleet-agent', process.execPath, [CLI, 'connect', '--config', agentConfig], {
      logDir: o.logDir,
      env: { ...process.env, PIPEOPS_PIPEOPS_TOKEN: tokens.agent },
    });
    hooks.after(() => agent.stop('SIGTERM', 3_000));
    const health = await agent.waitForRecord('agent health listener', (r) => typeof r.msg === 'string' && r.msg.startsWith('health listener on'), 30_000);
    const healthUrl = `http://${String(health.msg).slice('health listener on '.length)}`;
    await until('the fleet agent ready', async () => ((await fetch(`${healthUrl}/ready`)).status === 200 ? true : undefined), 60_000, 100);

    const owner = async (): Promise<string | undefined> => {
      for (const replicaUrl of set.replicaUrls) {
        try {
          const text = await httpsGet(`${replicaUrl}/v1/clusters`, set.caCert, set.adminToken);
          return (JSON.parse(text) as { clusters: Array<{ cluster: string; replica?: { url: string } }> }).clusters.find((c) => c.cluster === o.cluster)
            ?.replica?.url;
        } catch {
          /* that replica is down: ask the next */
        }
      }
      return undefined;
    };
    await until('the cluster held by a replica', async () => (await owner()) ?? undefined, 30_000, 100);
    let kubeconfigs = 0;
    return {
      lbUrl: set.lbUrl,
      replicaUrls: set.replicaUrls,
      cluster: o.cluster,
      owner,
      close: () => hooks.close(),
      adminToken: set.adminToken,
      caCert: set.caCert,
      runnerKubeconfig: (server) =>
        writeKubeconfig(join(dir, `runner-${++kubeconfigs}.kubeconfig`), {
          server: `${server}/k8s/clusters/${o.cluster}`,
          token: tokens.runner,
          caData: set.caCert,
        }),
      roll: (i) => set.roll(i),
    };
  } catch (err) {
    await hooks.close();
    throw err;
  }
}

/** GET over HTTPS trusting `ca`; the body, or a rejection for anything but 200. */
async function httpsGet(target: string, ca: string, token?: string): Promise<string> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(target, { ca, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res
        .setEncoding('utf8')
        .on('data', (d: string) => {
          body += d;
        })
        .on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${target}: ${res.statusCode}`))));
    });
    req.on('error', reject).end();
  });
}
