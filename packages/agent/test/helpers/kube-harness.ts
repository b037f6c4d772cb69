import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Readable, duplexPair } from 'node:stream';
import type { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { createSession } from '@pipeops/tunnel-mux';
import type { Session } from '@pipeops/tunnel-mux';
import { encodePreamble } from '@pipeops/tunnel-protocol';
import type { StreamPreamble } from '@pipeops/tunnel-protocol';
import { collectLogs, kubeconfigFor, startFakeApiServer } from '@pipeops/tunnel-testkit';
import type { FakeApiServer, LogCollector } from '@pipeops/tunnel-testkit';
import { createKubePath } from '../../src/kube/kube-path.ts';
import type { KubePath, KubePathOptions } from '../../src/kube/kube-path.ts';
import { AgentMetrics } from '../../src/metrics.ts';
import { StreamDispatcher } from '../../src/streams.ts';

/** The agent's stream dispatcher with the Kubernetes path, fed by a real mux session pair (in memory). */
export interface KubeHarness {
  /** The gateway's side of the session: open streams here. */
  gateway: Session;
  kube: KubePath;
  logs: LogCollector;
  registry: Registry;
  /** Opens a stream and writes the preamble (defaults: kind http, requestId r-N, runnerId runner-1). */
  open(p?: Partial<StreamPreamble>): Duplex;
  /** One HTTP request over a fresh stream with Node's http client. */
  request(o: {
    method?: string;
    path: string;
    headers?: OutgoingHttpHeaders;
    body?: Buffer | Readable;
    requestId?: string;
  }): Promise<{ res: IncomingMessage; stream: Duplex }>;
  /** Writes `raw` bytes after the preamble and reads until the agent ends the stream. */
  raw(text: string): Promise<string>;
}

let seq = 0;

export async function startKubeHarness(
  t: TestContext,
  o: Omit<KubePathOptions, 'apiHealthIntervalMs'> & { apiHealthIntervalMs?: number; start?: boolean },
): Promise<KubeHarness> {
  const [a, b] = duplexPair();
  const agentSide = createSession(a, { client: true, keepAliveIntervalMs: 0 });
  const gateway = createSession(b, { client: false, keepAliveIntervalMs: 0 });
  const logs = collectLogs();
  const logger = logs.logger('debug');
  const registry = new Registry();
  const metrics = new AgentMetrics(registry);
  const dispatcher = new StreamDispatcher({ logger, metrics, preambleTimeoutMs: 5_000 });
  const kube = createKubePath({ apiHealthIntervalMs: 30_000, ...o }, { logger, registry });
  dispatcher.register('http', kube.handler);
  agentSide.on('stream', (s) => void dispatcher.handle(s));
  if (o.start !== false) kube.start();
  t.after(async () => {
    await kube.close();
    gateway.destroy();
    agentSide.destroy();
  });
  const open = (p: Partial<StreamPreamble> = {}): Duplex => {
    const s = gateway.open();
    s.on('error', () => {});
    s.write(encodePreamble({ v: 1, kind: 'http', requestId: `r-${String(++seq)}`, runnerId: 'runner-1', cluster: 'c1', ...p }));
    return s;
  };
  return {
    gateway,
    kube,
    logs,
    registry,
    open,
    request(r) {
      const stream = open(r.requestId !== undefined ? { requestId: r.requestId } : {});
      return new Promise((resolve, reject) => {
        const req = httpRequest({ createConnection: () => stream as never, method: r.method ?? 'GET', path: r.path, headers: r.headers ?? {} });
        req.on('response', (res) => resolve({ res, stream }));
        req.on('error', reject);
        if (r.body === undefined) req.end();
        else if (Buffer.isBuffer(r.body)) req.end(r.body);
        else r.body.pipe(req);
      });
    },
    async raw(text) {
      const stream = open();
      stream.write(text);
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      await once(stream, 'end');
      stream.end();
      return Buffer.concat(chunks).toString('latin1');
    },
  };
}

/** Reads a readable to its end. */
export async function readAll(r: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

/** A temp dir removed after the test. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'agent-kube-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `text` to `dir/name` and returns the path. */
export function writeIn(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** A self-signed client certificate and key (P-256), made with the system openssl (no extended key usage, so it may authenticate a TLS client). */
export function clientCertificate(dir: string): { cert: string; key: string } {
  const certFile = join(dir, 'client.crt');
  const keyFile = join(dir, 'client.key');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=agent-client',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

/** Metric value from the registry's JSON (0 when absent). */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> | undefined)?.find(
    (x) => (x.metricName === undefined || x.metricName === name) && Object.entries(labels).every(([k, val]) => String(x.labels[k]) === val),
  );
  return v?.value ?? 0;
}

/** The stand-in API server and a kube harness whose kubeconfig points at it (not started); both closed after the test. */
export async function startHarnessOnFake(t: TestContext): Promise<{ fake: FakeApiServer; h: KubeHarness }> {
  const fake = await startFakeApiServer();
  t.after(() => fake.close());
  const kubeconfig = writeIn(tempDir(t), 'kubeconfig', kubeconfigFor({ server: fake.url, token: fake.token, caData: fake.caCert }));
  const h = await startKubeHarness(t, { kubeconfig, inCluster: false, start: false });
  return { fake, h };
}

/** Sets environment variables for the duration of a test (the in-cluster and default loaders read them). */
export function setEnv(t: TestContext, vars: Record<string, string | undefined>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>): void => {
    for (const [k, val] of Object.entries(v)) {
      if (val === undefined) delete process.env[k];
      else process.env[k] = val;
    }
  };
  apply(vars);
  t.after(() => apply(saved));
}
