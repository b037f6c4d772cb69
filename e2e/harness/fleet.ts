// The gateway as a fleet in front of the real kube-apiserver: `replicas`
// `pipeops-tunnel gateway` processes sharing a real redis-server, a real
// HAProxy in front of them (TCP pass-through, /ready health checks, `balance
// first`), and one `pipeops-tunnel connect` agent that dials the load
// balancer. A replica can be rolled (SIGTERM, wait, start again on its port).
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, startHaproxy, startRedisServer, testCertificates, type Haproxy } from '@pipeops/tunnel-testkit';
import { start, until, type Proc } from './proc.ts';
import { CLI } from './paths.ts';
import { writeKubeconfig } from './tunnel.ts';

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

export interface FleetOptions { dir: string; logDir: string; cluster: string; agentKubeconfig: string; replicas: number }

const secret = (): string => randomBytes(24).toString('base64url');

export async function startFleet(o: FleetOptions): Promise<Fleet> {
  const closers: Array<() => unknown> = [];
  const hooks = { after: (fn: () => unknown) => { closers.unshift(fn); } };
  const close = async (): Promise<void> => { for (const fn of closers.splice(0)) await Promise.resolve(fn()).catch(() => {}); };
  try {
    const dir = join(o.dir, 'fleet');
    mkdirSync(dir, { recursive: true });
    const certs = testCertificates();
    const file = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text, { mode: 0o600 }); return p; };
    const [certFile, keyFile, caFile] = [file('tls.crt', certs.cert), file('tls.key', certs.key), file('ca.pem', certs.caCert)];
    const tokens = { agent: secret(), runner: secret(), admin: secret() };
    const tokensFile = file('tokens.yaml', stringify({
      agents: [{ cluster: o.cluster, token: tokens.agent }], runners: [{ id: 'fleet-runner', token: tokens.runner, clusters: [o.cluster] }], admins: [{ token: tokens.admin }],
    }));
    const secretFile = file('replica-secret', `${secret()}\n`);
    const redis = await startRedisServer(hooks);
    const ports: number[] = [];
    for (let i = 0; i < o.replicas; i++) ports.push(await freePort());
    const url = (port: number): string => `https://127.0.0.1:${port}`;
    const replicas: Proc[] = [];
    let generation = 0;
    const launch = async (i: number): Promise<void> => {
      generation += 1;
      const proc = start(`fleet-gateway-${i}-${generation}`, process.execPath, [
        CLI, 'gateway', '--listen', `127.0.0.1:${ports[i]}`, '--tls-cert', certFile, '--tls-key', keyFile, '--tokens', tokensFile,
        '--redis-url', redis.url, '--advertise-url', url(ports[i]!), '--replica-secret-file', secretFile,
      ], { logDir: o.logDir, env: { ...process.env, PIPEOPS_GATEWAY_REPLICA_CA_FILE: caFile, PIPEOPS_GATEWAY_DRAIN_TIMEOUT: '10s' } });
      replicas[i] = proc;
      closers.unshift(() => proc.stop('SIGKILL', 1_000));
      await proc.waitForRecord('fleet registry ready', (r) => r.event === 'fleet_registry_ready', 30_000);
    };
    for (let i = 0; i < o.replicas; i++) await launch(i);
    const lb: Haproxy = await startHaproxy(hooks, { dir, backends: ports });

    const agentConfig = file('agent.yaml', stringify({
      agent: { cluster_name: o.cluster, name: 'fleet-agent', port: 0, listen_host: '127.0.0.1', poll_interval: '5s' },
      pipeops: { api_url: lb.url, tls: { ca_file: caFile }, reconnect: { interval: '200ms', max_interval: '1s' } },
      kubernetes: { kubeconfig: o.agentKubeconfig },
    }));
    const agent = start('fleet-agent', process.execPath, [CLI, 'connect', '--config', agentConfig], { logDir: o.logDir, env: { ...process.env, PIPEOPS_PIPEOPS_TOKEN: tokens.agent } });
    closers.unshift(() => agent.stop('SIGTERM', 3_000));
    const health = await agent.waitForRecord('agent health listener', (r) => typeof r.msg === 'string' && r.msg.startsWith('health listener on'), 30_000);
    const healthUrl = `http://${String(health.msg).slice('health listener on '.length)}`;
    await until('the fleet agent ready', async () => ((await fetch(`${healthUrl}/ready`)).status === 200 ? true : undefined), 60_000, 100);

    const owner = async (): Promise<string | undefined> => {
      for (const port of ports) {
        try {
          const text = await httpsGet(`${url(port)}/v1/clusters`, certs.caCert, tokens.admin);
          return (JSON.parse(text) as { clusters: Array<{ cluster: string; replica?: { url: string } }> }).clusters.find((c) => c.cluster === o.cluster)?.replica?.url;
        } catch { /* that replica is down: ask the next */ }
      }
      return undefined;
    };
    await until('the cluster held by a replica', async () => (await owner()) ?? undefined, 30_000, 100);
    let kubeconfigs = 0;
    return {
      lbUrl: lb.url, replicaUrls: ports.map(url), cluster: o.cluster, owner, close, adminToken: tokens.admin, caCert: certs.caCert,
      runnerKubeconfig: (server) => writeKubeconfig(join(dir, `runner-${++kubeconfigs}.kubeconfig`), { server: `${server}/k8s/clusters/${o.cluster}`, token: tokens.runner, caData: certs.caCert }),
      async roll(i) {
        const old = replicas[i]!;
        old.child.kill('SIGTERM');
        const code = await old.exited;
        await launch(i);
        await until(`replica ${i} ready`, async () => ((await httpsGet(`${url(ports[i]!)}/ready`, certs.caCert).catch(() => '')).includes('"ready"') ? true : undefined), 30_000, 50);
        return code;
      },
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** GET over HTTPS trusting `ca`; the body, or a rejection for anything but 200. */
async function httpsGet(target: string, ca: string, token?: string): Promise<string> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(target, { ca, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${target}: ${res.statusCode}`))));
    });
    req.on('error', reject).end();
  });
}
