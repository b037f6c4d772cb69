// The `/k8s/clusters/{cluster}/…` front-end: the runner speaks HTTP/1.1 to
// the gateway's server (keep-alive, every verb, upgrades), and each request
// is relayed on its own agent stream with the protocol's relayRequest /
// relayUpgrade, which parse the agent's answer and write it back framed for
// the runner's connection.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { kubeStatusJson, relayRequest, relayUpgrade, type RelayOptions } from '@pipeops/tunnel-protocol';
import type { AddressedCluster } from '@pipeops/tunnel-protocol';
import { authorizeRunner, CLUSTER_RE } from '../runner-auth.ts';
import type { RunnerLimits } from '../runner-limits.ts';
import type { RunnerIdentity, TokenStore } from '../tokens.ts';
import type { ForwardContext, ForwardCore, RefusalContext } from './core.ts';
import { targetProblem } from './heads.ts';
import { REQUEST_ID_HEADER, requestIdFor } from './request-id.ts';

/** Prefix of the runners' Kubernetes API route. */
export const K8S_CLUSTERS_PREFIX = '/k8s/clusters/';

/** Splits `/k8s/clusters/{cluster}[/rest][?query]` into the cluster and the API-server target (`/rest?query`). */
export function parseK8sTarget(url: string): { cluster: string; path: string } | undefined {
  if (!url.startsWith(K8S_CLUSTERS_PREFIX)) return undefined;
  const rest = url.slice(K8S_CLUSTERS_PREFIX.length);
  const end = rest.search(/[/?]/);
  const cluster = end === -1 ? rest : rest.slice(0, end);
  const tail = end === -1 ? '' : rest.slice(end);
  return { cluster, path: tail.startsWith('/') ? tail : `/${tail}` };
}

/**
 * The cluster and API-server target of a request on a per-cluster address
 * (see the protocol's cluster-address.ts): the whole target is the API server's. The path
 * form is accepted there too when it names the same cluster (a path-form
 * kubeconfig given a `tls-server-name` keeps working); naming another
 * cluster is a refusal, `problem`, as is a server name that names no cluster.
 */
export function addressedK8sTarget(url: string, addressed: AddressedCluster): { cluster: string; path: string } | { problem: string; status: number } {
  if (!addressed.ok) return { problem: addressed.message, status: 404 };
  const prefixed = parseK8sTarget(url);
  if (prefixed === undefined) return { cluster: addressed.cluster, path: url };
  if (prefixed.cluster === addressed.cluster) return prefixed;
  return {
    status: 400,
    problem:
      `this connection is for cluster "${addressed.cluster}" (TLS server name ${addressed.serverName}), ` +
      `but the path names cluster "${prefixed.cluster}": on a cluster's own address, give the API server's path (/version, /api/…)`,
  };
}

/** What the `/k8s/clusters` front-end needs besides the core. */
export interface K8sRouteDeps {
  core: ForwardCore;
  tokens: () => TokenStore;
  /** A runner's limits: its tokens-file entry over the gateway's defaults. */
  limitsFor: (runner: RunnerIdentity) => RunnerLimits;
}

/**
 * Serves `/k8s/clusters/{cluster}/…` requests and upgrades, and every
 * request on a per-cluster address (`addressed`): authenticates the runner,
 * checks the target, and relays the request to the cluster's agent without
 * the runner's `Authorization`, with `x-pipeops-request-id` set both ways.
 * Both forms are one route (`route: 'k8s'` in audit records and metrics).
 * Never throws.
 */
export class K8sRoute {
  readonly #deps: K8sRouteDeps;

  constructor(deps: K8sRouteDeps) {
    this.#deps = deps;
  }

  /** A plain request; `addressed` when the connection's TLS server name chose the cluster. */
  request(req: IncomingMessage, res: ServerResponse, addressed?: AddressedCluster): void {
    this.#serve(req, res, undefined, addressed);
  }

  /** An upgrade (exec, attach, port-forward); `addressed` as for {@link K8sRoute.request}. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, addressed?: AddressedCluster): void {
    this.#serve(req, socket, head, addressed);
  }

  #serve(req: IncomingMessage, target: ServerResponse | Duplex, head: Buffer | undefined, addressed: AddressedCluster | undefined): void {
    const { core } = this.#deps;
    const url = req.url ?? '/';
    const parsed = addressed === undefined ? parseK8sTarget(url) : addressedK8sTarget(url, addressed);
    const base: RefusalContext = { requestId: requestIdFor(req), route: 'k8s', path: parsed === undefined ? '' : 'path' in parsed ? parsed.path : url };
    const refuse = (status: number, message: string, ctx: RefusalContext): void => core.refuse(req.method, target, { status, message, headers: {} }, ctx);
    if (parsed !== undefined && 'problem' in parsed) {
      // As the path form: a name that names no cluster is a 404, a request naming two clusters a protocol error.
      refuse(parsed.status, parsed.problem, parsed.status === 400 ? { ...base, rule: 'protocol' } : base);
      return;
    }
    if (parsed === undefined || !CLUSTER_RE.test(parsed.cluster)) {
      refuse(404, 'no cluster named in the path (/k8s/clusters/{cluster}/…)', base);
      return;
    }
    const auth = authorizeRunner(this.#deps.tokens(), req.headers.authorization, parsed.cluster);
    if (!auth.ok) {
      refuse(auth.status, auth.message, { ...base, cluster: parsed.cluster, rule: auth.status === 401 ? 'auth' : 'cluster' });
      return;
    }
    const ctx: ForwardContext = {
      requestId: base.requestId,
      route: 'k8s',
      path: parsed.path,
      cluster: parsed.cluster,
      runnerId: auth.runner.id,
      limits: this.#deps.limitsFor(auth.runner),
    };
    const problem = targetProblem(req.method, parsed.path);
    if (problem !== undefined) {
      refuse(400, problem, { ...ctx, rule: 'protocol' });
      return;
    }
    const admitted = core.admit(ctx, req.rawHeaders);
    if ('refusal' in admitted) {
      core.refuse(req.method, target, admitted.refusal, ctx);
      return;
    }
    const started = performance.now();
    const open = (): Promise<Duplex> => core.openAgent(ctx);
    const relayed =
      head === undefined
        ? relayRequest(req, target as ServerResponse, open, this.#relayOptions(ctx))
        : relayUpgrade(req, target as Duplex, head, open, this.#relayOptions(ctx));
    void relayed.then((r) => {
      admitted.slot.release();
      core.record(req.method, ctx, r, performance.now() - started);
    });
  }

  #relayOptions(ctx: ForwardContext): RelayOptions {
    return {
      path: ctx.path,
      dropHeaders: ['authorization'],
      setHeaders: { [REQUEST_ID_HEADER]: ctx.requestId },
      responseHeaders: { [REQUEST_ID_HEADER]: ctx.requestId },
      headTimeoutMs: this.#deps.core.headTimeoutMs,
      errorResponse: (status, reason, message) => ({ contentType: 'application/json', body: kubeStatusJson(status, message, reason) }),
    };
  }
}
