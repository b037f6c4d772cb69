// The Kubernetes path assembled from real parts, for the k8s-*.test.ts files:
// the testkit's startKubePath (fake API server, real agent, real gateway over
// TLS, an undici dispatcher for the runner) plus a canary server standing by
// for "nothing but the API server is ever dialled".
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import { createAgent, type Agent } from '@pipeops/tunnel-agent';
import type { GatewayOptions } from '@pipeops/tunnel-gateway';
import { KUBE_PATH, startCanaryServer, startKubePath, type CanaryServer, type KubePath, type KubePathOptions } from '@pipeops/tunnel-testkit';

export const AGENT_TOKEN = KUBE_PATH.agentToken;
export const RUNNER_TOKEN = KUBE_PATH.runnerToken;
export const CLUSTER = KUBE_PATH.cluster;

export interface K8sPath extends KubePath<Agent> {
  canary: CanaryServer;
  /** `https://127.0.0.1:<gw>/k8s/clusters/c1` */
  base: string;
  /** `{ authorization: 'Bearer <runner token>' }` */
  auth: Record<string, string>;
}

/** Starts the whole path; everything is closed in `t.after`. */
export async function startK8sPath(
  t: TestContext,
  opts: { agentHeadTimeoutMs?: number; gateway?: Partial<GatewayOptions>; agent?: KubePathOptions<Agent>['agent'] } = {},
): Promise<K8sPath> {
  const canary = await startCanaryServer();
  t.after(() => canary.close());
  const gateway = { ...opts.gateway, ...(opts.agentHeadTimeoutMs === undefined ? {} : { agentHeadTimeoutMs: opts.agentHeadTimeoutMs }) };
  const path = await startKubePath(t, { createAgent, gateway, ...(opts.agent !== undefined ? { agent: opts.agent } : {}) });
  return Object.assign(path, { canary, base: path.clusterUrl(), auth: { authorization: `Bearer ${RUNNER_TOKEN}` } });
}

/** Writes `text` on a raw connection (TLS socket or mux stream) and reads until the peer ends or closes (at most 5 s); the status code, the body and all text. */
export async function rawExchange(conn: Duplex, text: string): Promise<{ status: number; body: string; text: string }> {
  let received = '';
  conn.setEncoding('utf8');
  conn.on('data', (d: string) => {
    received += d;
  });
  conn.on('error', () => {});
  const done = Promise.race([once(conn, 'end'), once(conn, 'close')]);
  conn.write(text);
  const timer = setTimeout(() => conn.destroy(), 5_000);
  await done.catch(() => {});
  clearTimeout(timer);
  conn.destroy();
  const m = /^HTTP\/1\.1 (\d{3})/.exec(received);
  return { status: m ? Number(m[1]) : 0, body: received.slice(received.indexOf('\r\n\r\n') + 4), text: received };
}
