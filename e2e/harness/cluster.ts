// The cluster: kubesim (a real kube-apiserver with embedded etcd, built from
// Go modules) and kwok (fake kubelet: nodes Ready, pods Running, and logs,
// exec and port-forward served for the API server to proxy to).
import { createServer, type Server } from 'node:net';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { parse } from 'yaml';
import { FatalError, start, until, type Proc } from './proc.ts';
import { runCommand, type CommandResult } from './run-command.ts';
import { E2E_DIR } from './paths.ts';

export interface Cluster {
  url: string;
  adminKubeconfig: string;
  /** PEM of the API server's CA (from the admin kubeconfig). */
  caData: string;
  /** The kube-apiserver's audit log (JSON lines, level Metadata for every request): `LOG_DIR/kube-apiserver-audit.log`. */
  auditLog: string;
  kubesim: Proc;
  kwok: Proc;
  /** kubectl with the admin credential (setup only; scenarios use the agent's). */
  admin(args: string[], stdin?: string): Promise<CommandResult>;
  /** Appends CRI log lines to the file kwok serves as every container's log. */
  appendLog(lines: string[]): void;
  /** TCP echo server every pod port is forwarded to by kwok. */
  echoPort: number;
  /** Folder kwok runs exec commands in. */
  execDir: string;
  nodeName: string;
  close(): Promise<void>;
}

export interface ClusterOptions {
  kubesim: string;
  kubectl: string;
  kwok: string;
  dir: string;
  logDir: string;
  home: string;
}

/** audit.k8s.io/v1 Policy: level Metadata for every request. */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
`;

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function startEcho(): Promise<{ server: Server; port: number }> {
  const server = createServer((sock) => {
    sock.on('error', () => {});
    sock.pipe(sock);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const simDir = join(o.dir, 'kubesim');
  mkdirSync(simDir, { recursive: true, mode: 0o700 });
  // E2E_APISERVER_FLAGS: extra kube-apiserver flags (space-separated), e.g. --disable-http2-serving
  const extra = (process.env.E2E_APISERVER_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
  // An audit log, kept with the run's logs: every request at level Metadata
  // (who, verb, resource, status — never bodies), one JSON event per line and
  // stage (RequestReceived is left out: ResponseComplete, or ResponseStarted
  // for a watch or an exec, carries the same fields plus the outcome). The
  // `log` backend is synchronous (`--audit-log-mode=blocking`, the default).
  // Scenarios find a request by its auditID (the tunnel sets `Audit-ID` from
  // its request id). Flags after `--` go to kube-apiserver unchanged.
  const auditPolicy = join(simDir, 'audit-policy.yaml');
  writeFileSync(auditPolicy, AUDIT_POLICY);
  const auditLog = join(o.logDir, 'kube-apiserver-audit.log');
  const auditFlags = [`--audit-policy-file=${auditPolicy}`, `--audit-log-path=${auditLog}`, '--audit-log-maxsize=200', '--audit-log-maxbackup=2'];
  const kubesim = start('kubesim', o.kubesim, ['--dir', simDir, '--port', '0', '--', ...auditFlags, ...extra], { logDir: o.logDir });
  const ready = await kubesim.waitForLine('KUBESIM READY', /KUBESIM READY https:\/\//, 180_000);
  const url = /KUBESIM READY (https:\/\/\S+)/.exec(ready)?.[1] ?? '';
  const adminKubeconfig = join(simDir, 'admin.kubeconfig');
  const kc = parse(readFileSync(adminKubeconfig, 'utf8')) as { clusters: Array<{ cluster: Record<string, string> }> };
  const c0 = kc.clusters[0]?.cluster ?? {};
  const caData =
    c0['certificate-authority-data'] !== undefined
      ? Buffer.from(c0['certificate-authority-data'], 'base64').toString('utf8')
      : readFileSync(c0['certificate-authority'] ?? '', 'utf8');

  const admin = (args: string[], stdin?: string) =>
    runCommand(o.kubectl, [`--kubeconfig=${adminKubeconfig}`, ...args], { home: o.home, timeoutMs: 60_000, ...(stdin !== undefined ? { stdin } : {}) });
  await until('API server /readyz', async () => ((await admin(['get', '--raw', '/readyz'])).stdout.trim() === 'ok' ? true : undefined), 120_000, 250);

  // kwok, started by e2e/kwok/run-kwok.sh (renders e2e/kwok/kwok.yaml.tmpl with the stage files
  // of the kwok module from the Go module cache, then execs kwok: the pid is kwok's).
  const state = join(o.dir, 'kwok');
  const execDir = join(state, 'exec');
  const logsFile = join(state, 'logs', 'containers.log');
  const appendLog = (lines: string[]) => {
    appendFileSync(logsFile, lines.map((l) => `${new Date().toISOString()} stdout F ${l}\n`).join(''));
  };
  const echo = await startEcho();
  const nodePort = await freePort();
  const kwok = start(
    'kwok',
    'bash',
    [join(E2E_DIR, 'kwok', 'run-kwok.sh'), '--kubeconfig', adminKubeconfig, '--state', state, '--port', String(nodePort), '--echo-port', String(echo.port)],
    {
      logDir: o.logDir,
      env: { ...process.env, KWOK: o.kwok, PATH: `/usr/local/go/bin:${process.env.PATH ?? ''}` },
    },
  );
  await until(
    'kwok /healthz',
    async () => {
      if (!kwok.alive) throw new FatalError(`kwok exited:\n${kwok.tail()}`);
      return await new Promise<true | undefined>((resolve) => {
        const req = httpsGet(`https://127.0.0.1:${nodePort}/healthz`, { rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.statusCode === 200 ? true : undefined);
        });
        req.on('error', () => resolve(undefined));
      });
    },
    60_000,
    200,
  );
  appendLog(['e2e log line 1', 'e2e log line 2', 'e2e log line 3']);
  const nodeYaml = readFileSync(join(E2E_DIR, 'kwok', 'node.yaml'), 'utf8');
  const nodeName = /^\s*name:\s*(\S+)/m.exec(nodeYaml)?.[1] ?? 'kwok-node-0';
  const created = await admin(['apply', '-f', '-'], nodeYaml);
  if (created.code !== 0) throw new Error(`creating the kwok node failed: ${created.stderr}`);
  await until(
    'the kwok node to be Ready',
    async () => {
      if (!kwok.alive) throw new FatalError(`kwok exited:\n${kwok.tail()}`);
      const r = await admin(['get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
      return r.stdout.trim() === 'True' ? true : undefined;
    },
    90_000,
    250,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nkwok:\n${kwok.tail()}`);
  });

  return {
    url,
    adminKubeconfig,
    caData,
    auditLog,
    kubesim,
    kwok,
    admin,
    appendLog,
    echoPort: echo.port,
    execDir,
    nodeName,
    async close() {
      await kwok.stop('SIGTERM', 3_000);
      await kubesim.stop('SIGTERM', 10_000);
      echo.server.close();
    },
  };
}

/** Files in a folder (for the report of what a run left). */
export function listDir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
