import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { addressedCluster, K8S_WS_PATH, RUNNER_WS_PATH, SUBPROTOCOL, type AddressedCluster } from '@pipeops/tunnel-protocol';
import type { JsonProtocolEndpoint } from './json-protocol/index.ts';
import type { ForwardCore, RefusalContext, RunnerRoute } from './forward/core.ts';
import { K8S_CLUSTERS_PREFIX, type K8sRoute } from './forward/k8s-route.ts';
import { requestIdFor } from './forward/request-id.ts';
import { authorizeRunner, CLUSTER_RE } from './runner-auth.ts';
import { RUNNER_REVOKED_CLOSE, type RunnerEndpoint, type RunnerStillAllowed } from './runner-endpoint.ts';
import type { RunnerLimits } from './runner-limits.ts';
import type { RunnerIdentity, TokenStore } from './tokens.ts';

/** Paths the API server serves at its root: a request for one of them at the gateway's root lost its `/k8s/clusters/{cluster}` prefix. */
const API_ROOT_PATH_RE = /^\/(?:version|api|apis|openapi|healthz|livez|readyz)(?:\/|$)/;

/** How long a revoked `/ws/k8s` socket gets for the close handshake before it is destroyed (ms). */
const REVOKE_DESTROY_MS = 1_000;

/**
 * A WebSocket close frame (server to client: unmasked) with `code` and a
 * short `reason` (< 124 bytes).
 */
function closeFrame(code: number, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8');
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
}

/** What the runner routes need from the gateway. */
export interface RunnerRoutesDeps {
  tokens: () => TokenStore;
  draining: () => boolean;
  /** The forwarding core: the runner routes' refusals are its `Status` answers and audit records. */
  core: ForwardCore;
  /** The `/k8s/clusters/…` front-end. */
  k8s: K8sRoute;
  runners: RunnerEndpoint;
  /** The JSON message protocol endpoint (`/ws/k8s`); undefined → 501. */
  json: () => JsonProtocolEndpoint | undefined;
  /** A runner's limits: its tokens-file entry over the gateway's defaults. */
  limitsFor: (runner: RunnerIdentity) => RunnerLimits;
  /** Suffix of the per-cluster addresses (TLS server names `<cluster>.<suffix>`); `''`: none. */
  clusterAddressSuffix: string;
  logger: Logger;
}

/**
 * The runners' routes on the gateway's server: `/k8s/clusters/{cluster}/…`
 * (requests and upgrades), every request on a per-cluster address (TLS
 * server name `<cluster>.<suffix>`, the same route without the prefix),
 * `GET /ws/runner` and `GET /ws/k8s`. Everything is authenticated before
 * anything is upgraded or relayed; refusals are Kubernetes `Status` objects.
 */
export class RunnerRoutes {
  readonly #deps: RunnerRoutesDeps;
  /** Upgraded `/ws/k8s` sockets, with their runner and the re-check run after a tokens reload. */
  readonly #jsonSockets = new Map<Duplex, { runnerId: string; cluster: string; allowed: RunnerStillAllowed }>();

  constructor(deps: RunnerRoutesDeps) {
    this.#deps = deps;
  }

  /**
   * After a tokens reload: closes every `/ws/runner` session and `/ws/k8s`
   * socket whose runner token is gone or no longer reaches its cluster (close
   * code 1008 "runner token revoked"). Returns how many were closed.
   */
  revoke(tokens: TokenStore): number {
    let cut = this.#deps.runners.revoke(tokens);
    for (const [socket, entry] of this.#jsonSockets) {
      if (entry.allowed(tokens)) continue;
      cut++;
      this.#jsonSockets.delete(socket);
      this.#deps.logger.warn(
        { event: 'runner_revoked', code: 'PT_ERR_AUTH_REJECTED', runnerId: entry.runnerId, cluster: entry.cluster, route: 'ws-k8s' },
        'runner token revoked; closing its socket',
      );
      // The JSON endpoint owns the WebSocket and offers no per-runner close, so the close frame goes on the
      // raw socket: ws writes each frame in one synchronous write, so this one lands between two frames.
      // The runner answers it, ws completes the close handshake and the endpoint cancels the socket's requests.
      if (socket.writable) socket.write(closeFrame(RUNNER_REVOKED_CLOSE.code, RUNNER_REVOKED_CLOSE.reason));
      setTimeout(() => socket.destroy(), REVOKE_DESTROY_MS).unref();
    }
    return cut;
  }

  /**
   * Answers a request no route took when its path is one the API server
   * serves at its root (`/version`, `/api…`, `/apis…`, `/openapi…`, health
   * checks): a 404 `Status` saying the gateway serves the API under
   * `/k8s/clusters/{cluster}` — what a kubectl older than 1.34 runs into
   * with `get --raw`, which drops the kubeconfig server's path. False for
   * other paths (the caller answers its plain 404).
   */
  notFound(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (!API_ROOT_PATH_RE.test(path)) return false;
    const suffix = this.#deps.clusterAddressSuffix;
    const address =
      suffix === ''
        ? ''
        : `, or use the cluster's own address, which needs no prefix (kubeconfig server https://<gateway> with tls-server-name <cluster>.${suffix}, as "pipeops-tunnel kubeconfig" writes it)`;
    const message =
      `the gateway serves the Kubernetes API under /k8s/clusters/<cluster>, not at ${path}; ` +
      `"kubectl get --raw" through the gateway needs that prefix in the path (kubectl < 1.34 drops the server path for --raw): ` +
      `kubectl get --raw /k8s/clusters/<cluster>${path}${address}`;
    this.#refuse(req, res, 404, message, { requestId: requestIdFor(req), route: 'k8s', path });
    return true;
  }

  /**
   * The cluster a request's connection addresses by its TLS server name, or
   * undefined for a connection to the gateway's own name (or without TLS).
   * Read from the socket, not from `Host`: the Host header names the gateway
   * (`server: https://GATEWAY`), only the handshake carries the cluster's name.
   */
  #addressed(req: IncomingMessage): AddressedCluster | undefined {
    return addressedCluster((req.socket as Partial<TLSSocket>).servername, this.#deps.clusterAddressSuffix);
  }

  /** Every request on a per-cluster address is that cluster's (whatever its path); false on other connections. */
  addressedRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const addressed = this.#addressed(req);
    if (addressed === undefined) return false;
    this.#deps.k8s.request(req, res, addressed);
    return true;
  }

  /** Every upgrade on a per-cluster address (exec, attach, port-forward) is that cluster's; false on other connections. */
  addressedUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const addressed = this.#addressed(req);
    if (addressed === undefined) return false;
    this.#deps.k8s.upgrade(req, socket, head, addressed);
    return true;
  }

  /** Handles `/k8s/clusters/…` requests; false for other paths. */
  request(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (!path.startsWith(K8S_CLUSTERS_PREFIX)) return false;
    this.#deps.k8s.request(req, res);
    return true;
  }

  /** Handles upgrades on the runner paths; false for other paths. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, path: string): boolean {
    if (path.startsWith(K8S_CLUSTERS_PREFIX)) {
      this.#deps.k8s.upgrade(req, socket, head);
      return true;
    }
    if (path === RUNNER_WS_PATH) {
      this.#wsRunner(req, socket, head);
      return true;
    }
    if (path === K8S_WS_PATH) {
      this.#wsK8s(req, socket, head);
      return true;
    }
    return false;
  }

  /** CONNECT is never relayed. */
  connect(req: IncomingMessage, socket: Duplex): void {
    this.#refuse(req, socket, 400, 'CONNECT is not supported by the gateway', { requestId: requestIdFor(req), route: 'k8s', path: '' });
  }

  /** Answers a `Status` refusal on `target` and records it. */
  #refuse(req: IncomingMessage, target: ServerResponse | Duplex, status: number, message: string, ctx: RefusalContext): void {
    this.#deps.core.refuse(req.method, target, { status, message, headers: {} }, ctx);
  }

  /** Shared pre-upgrade checks of the runner WebSockets; answers and returns undefined when refused. */
  #wsAuth(
    req: IncomingMessage,
    socket: Duplex,
    route: RunnerRoute,
    path: string,
  ): { runner: RunnerIdentity; cluster: string; query: URLSearchParams; allowed: RunnerStillAllowed } | undefined {
    const requestId = requestIdFor(req);
    const query = new URL(req.url ?? '/', 'http://gateway').searchParams;
    const cluster = query.get('cluster') ?? '';
    const base = { requestId, route, path, cluster };
    if (req.method !== 'GET') {
      this.#refuse(req, socket, 400, `${path} takes GET`, base);
      return undefined;
    }
    if (this.#deps.draining()) {
      this.#refuse(req, socket, 503, 'the gateway is draining; connect again later', base);
      return undefined;
    }
    if (!CLUSTER_RE.test(cluster)) {
      this.#refuse(req, socket, 400, 'the cluster query parameter is required', base);
      return undefined;
    }
    const auth = authorizeRunner(this.#deps.tokens(), req.headers.authorization, cluster);
    if (!auth.ok) {
      this.#refuse(req, socket, auth.status, auth.message, { ...base, rule: auth.status === 401 ? 'auth' : 'cluster' });
      return undefined;
    }
    // The same check against a reloaded token set (the header is kept only in this closure, never logged).
    const authorization = req.headers.authorization;
    const allowed: RunnerStillAllowed = (tokens) => authorizeRunner(tokens, authorization, cluster).ok;
    return { runner: auth.runner, cluster, query, allowed };
  }

  #wsRunner(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const ok = this.#wsAuth(req, socket, 'ws-runner', RUNNER_WS_PATH);
    if (ok === undefined) return;
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!offered.includes(SUBPROTOCOL)) {
      this.#refuse(req, socket, 400, `subprotocol ${SUBPROTOCOL} required`, {
        requestId: requestIdFor(req),
        route: 'ws-runner',
        path: RUNNER_WS_PATH,
        cluster: ok.cluster,
        runnerId: ok.runner.id,
      });
      return;
    }
    this.#deps.runners.accept(
      req,
      socket,
      head,
      {
        runnerId: ok.runner.id,
        cluster: ok.cluster,
        clientId: ok.query.get('runner_id') ?? undefined,
        limits: this.#deps.limitsFor(ok.runner),
      },
      ok.allowed,
    );
  }

  #wsK8s(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const ok = this.#wsAuth(req, socket, 'ws-k8s', K8S_WS_PATH);
    if (ok === undefined) return;
    const json = this.#deps.json();
    if (json === undefined) {
      this.#refuse(req, socket, 501, 'the JSON message protocol is not available on this gateway', {
        requestId: requestIdFor(req),
        route: 'ws-k8s',
        path: K8S_WS_PATH,
        cluster: ok.cluster,
        runnerId: ok.runner.id,
      });
      return;
    }
    this.#jsonSockets.set(socket, { runnerId: ok.runner.id, cluster: ok.cluster, allowed: ok.allowed });
    socket.once('close', () => this.#jsonSockets.delete(socket));
    // Read for each request, as the limiter reads them on the other routes: a tokens reload may change them.
    const runnerId = ok.runner.id;
    const limits = (): RunnerLimits | undefined => {
      const now = this.#deps.tokens().runnerById(runnerId);
      return now === undefined ? undefined : this.#deps.limitsFor(now);
    };
    json.handleUpgrade(req, socket, head, { runnerId, cluster: ok.cluster, limits });
  }
}
