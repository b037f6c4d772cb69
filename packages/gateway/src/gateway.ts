import { EventEmitter, once } from 'node:events';
import type http from 'node:http';
import type https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type WebSocket from 'ws';
import type { Stream } from '@pipeops/tunnel-mux';
import { createAuditSink, TunnelError, type AuditSink, type StreamPreamble } from '@pipeops/tunnel-protocol';
import { AgentConnection } from './agent-connection.ts';
import type { ClusterInfo } from './agent-report.ts';
import { ClusterRegistry } from './cluster-registry.ts';
import { resolveGatewayOptions, type GatewayOptions, type ResolvedGatewayOptions } from './config.ts';
import { gatewayError } from './errors.ts';
import { Fleet } from './fleet/fleet.ts';
import { REPLICA_PATH } from './fleet/replica-link.ts';
import { ForwardCore } from './forward/core.ts';
import { K8sRoute } from './forward/k8s-route.ts';
import { WsRunnerRoute } from './forward/ws-runner-route.ts';
import { createJsonProtocolEndpoint, type JsonProtocolEndpoint } from './json-protocol/index.ts';
import { GatewayMetrics } from './metrics.ts';
import { RunnerEndpoint } from './runner-endpoint.ts';
import { defaultRunnerLimits, RunnerLimiter, type RunnerLimits } from './runner-limits.ts';
import { RunnerRoutes } from './runner-routes.ts';
import { createServer } from './server.ts';
import { handleStatusRequest } from './status-endpoints.ts';
import { TokensWatcher } from './tokens-watcher.ts';
import { TokenStore, loadTokensFile, type AgentIdentity, type RunnerIdentity } from './tokens.ts';
import { TunnelEndpoint } from './tunnel-endpoint.ts';

/** The gateway (control-plane relay). See {@link createGateway}. */
export interface Gateway extends EventEmitter {
  /** Loads tokens, listens; resolves with the bound address. */
  start(): Promise<AddressInfo>;
  /** Graceful and idempotent: refuse new agents (503), send `reconnect` + GoAway to each agent, wait up to `deadlineMs` (default `drainTimeoutMs`) for in-flight streams, then close everything. */
  close(deadlineMs?: number): Promise<void>;
  /** Re-reads the tokens file (also done on file change). Rejects (and keeps the old tokens) when the new file is invalid; agents whose token was removed or moved to another cluster are disconnected, and so are runner sessions (`/ws/runner`) and sockets (`/ws/k8s`) whose token was removed or lost their cluster (close code 1008). */
  reloadTokens(): Promise<void>;
  /** The clusters whose agents are connected to this gateway (replica). */
  clusters(): ClusterInfo[];
  /** What GET /v1/clusters returns (for an admin): {@link clusters}, or with `fleet` every replica's, each with the replica holding it. */
  allClusters(): Promise<ClusterInfo[]>;
  /** This replica's id in the fleet (undefined without `fleet`). */
  readonly replicaId: string | undefined;
  /** Opens a data stream to the cluster's agent, preamble written. Rejects TunnelError 503 if not connected (or draining). */
  openStream(cluster: string, preamble: Omit<StreamPreamble, 'v'>): Promise<Duplex>;
  readonly server: https.Server | http.Server;
  on(e: 'agent-connected' | 'agent-disconnected', l: (cluster: string) => void): this;
}

/** Injected dependencies. */
export interface GatewayDeps {
  logger: Logger;
  registry: Registry;
}

/**
 * Creates the gateway: an HTTP(S) server with `GET /v1/tunnel` for agents,
 * `GET /v1/clusters`, `/health`, `/ready`, `/metrics`, and `openStream()`
 * for routing. Throws TunnelError `PT_ERR_GATEWAY_CONFIG` on invalid options.
 */
export function createGateway(options: GatewayOptions, deps: GatewayDeps): Gateway {
  return new GatewayImpl(resolveGatewayOptions(options), deps);
}

class GatewayImpl extends EventEmitter implements Gateway {
  readonly server: https.Server | http.Server;
  readonly #opts: ResolvedGatewayOptions;
  readonly #log: Logger;
  readonly #registry: Registry;
  readonly #metrics: GatewayMetrics;
  readonly #clusters = new ClusterRegistry();
  readonly #pending = new Set<AgentConnection>();
  readonly #sockets = new Set<Socket>();
  readonly #endpoint: TunnelEndpoint;
  readonly #runners: RunnerEndpoint;
  readonly #json: JsonProtocolEndpoint;
  readonly #runnerRoutes: RunnerRoutes;
  readonly #limiter = new RunnerLimiter();
  readonly #audit: AuditSink;
  readonly #fleet: Fleet | undefined;
  /** Internal: 'released' (conn) when a session stops being its cluster's here (closed, or moved to another replica). */
  readonly #sessions = new EventEmitter();
  #tokens: TokenStore;
  #watcher: TokensWatcher | undefined;
  #listening = false;
  #draining = false;
  #closing: Promise<void> | undefined;
  #reloading: Promise<void> = Promise.resolve();

  constructor(opts: ResolvedGatewayOptions, deps: GatewayDeps) {
    super();
    this.#opts = opts;
    this.#log = deps.logger;
    this.#registry = deps.registry;
    this.#metrics = new GatewayMetrics(deps.registry, { collectDefaultMetrics: opts.collectDefaultMetrics });
    this.#tokens = opts.tokens !== undefined ? new TokenStore(opts.tokens, 'tokens option') : new TokenStore({}, 'empty');
    this.#endpoint = new TunnelEndpoint({
      logger: this.#log,
      metrics: this.#metrics,
      maxPayloadBytes: opts.maxPayloadBytes,
      tokens: () => this.#tokens,
      draining: () => this.#draining,
      held: (cluster) => this.#held(cluster),
      onAgent: (ws, identity, remote) => this.#onAgent(ws, identity, remote),
    });
    const openStream = (cluster: string, preamble: Omit<StreamPreamble, 'v'>): Promise<Duplex> => this.openStream(cluster, preamble);
    const runnerLog = this.#log.child({ component: 'runner' });
    this.#audit = createAuditSink({ file: opts.auditFile, logger: runnerLog, message: 'runner request' });
    this.#metrics.countOpenStreams(() => this.#limiter.openByRunner());
    // One forwarding core under the three runner routes: their refusals, limits, agent streams, deadlines, audit and metrics.
    const core = new ForwardCore({
      openStream,
      agentHeadTimeoutMs: opts.agentHeadTimeoutMs,
      audit: this.#audit,
      metrics: this.#metrics,
      limiter: this.#limiter,
    });
    const limitsFor = (runner: RunnerIdentity): RunnerLimits => this.#limitsFor(runner);
    this.#runners = new RunnerEndpoint({
      logger: this.#log.child({ component: 'runner' }),
      metrics: this.#metrics,
      forwarder: new WsRunnerRoute({ core, requestHeadTimeoutMs: opts.requestHeadTimeoutMs }),
      maxPayloadBytes: opts.maxPayloadBytes,
      mux: opts.mux,
      limiter: this.#limiter,
    });
    this.#json = createJsonProtocolEndpoint({
      openStream,
      forward: core,
      audit: this.#audit,
      logger: this.#log.child({ component: 'json-protocol' }),
      maxMessageBytes: opts.jsonMaxMessageBytes,
      headTimeoutMs: opts.agentHeadTimeoutMs,
    });
    const runnerRoutes = new RunnerRoutes({
      tokens: () => this.#tokens,
      draining: () => this.#draining,
      core,
      k8s: new K8sRoute({ core, tokens: () => this.#tokens, limitsFor }),
      runners: this.#runners,
      json: () => this.#json,
      limitsFor,
      clusterAddressSuffix: opts.clusterAddressSuffix,
      logger: runnerLog,
    });
    this.#runnerRoutes = runnerRoutes;
    this.#fleet =
      opts.fleet === undefined
        ? undefined
        : new Fleet(opts.fleet, {
            logger: this.#log,
            maxPayloadBytes: opts.maxPayloadBytes,
            mux: opts.mux,
            openLocal: (cluster, preamble) => this.#openLocal(cluster, preamble),
            localClusters: () => this.clusters(),
            held: () => this.#clusters.all().map((c) => ({ cluster: c.cluster, sessionId: c.sessionId })),
            sessionOf: (cluster) => this.#clusters.get(cluster)?.sessionId,
            evict: (cluster, sessionId) => this.#evict(cluster, sessionId),
          });
    const fleet = this.#fleet;
    this.server = createServer(
      opts.tls,
      {
        addressed: {
          request: (req, res) => {
            if (this.#draining) res.setHeader('connection', 'close');
            return runnerRoutes.addressedRequest(req, res);
          },
          upgrade: (req, socket, head) => runnerRoutes.addressedUpgrade(req, socket, head),
        },
        upgrade: (req, socket, head, path) => {
          if (path === REPLICA_PATH && fleet !== undefined) {
            fleet.endpoint.handleUpgrade(req, socket, head);
            return true;
          }
          return runnerRoutes.upgrade(req, socket, head, path);
        },
        connect: (req, socket) => runnerRoutes.connect(req, socket),
        request: (req, res, path) => {
          // Draining: a keep-alive client's next request goes through the load balancer to another replica.
          if (this.#draining) res.setHeader('connection', 'close');
          return (
            runnerRoutes.request(req, res, path) ||
            handleStatusRequest(req, res, path, {
              registry: this.#registry,
              tokens: () => this.#tokens,
              clusters: () => this.allClusters(),
              notReadyReason: () => (this.#draining ? 'draining' : !this.#listening ? 'not listening' : undefined),
              // Not a reason to take the replica out of the load balancer: it still serves the tunnels it holds.
              degradedReason: () => this.#fleet?.registry.problem(),
            }) ||
            runnerRoutes.notFound(req, res, path)
          );
        },
        tunnelUpgrade: (req, socket, head) => this.#endpoint.handleUpgrade(req, socket, head),
      },
      this.#log,
      opts,
    );
    // Every accepted connection, upgraded ones included (Node's server forgets those), so that close() can end them all.
    this.server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  async start(): Promise<AddressInfo> {
    if (this.#closing) throw gatewayError('PT_ERR_GATEWAY_CLOSED', 'gateway was closed');
    if (this.#opts.tokensFile !== undefined) {
      this.#tokens = await loadTokensFile(this.#opts.tokensFile);
      this.#log.info({ event: 'tokens_loaded', file: this.#opts.tokensFile, ...this.#tokens.counts }, 'tokens loaded');
      this.#watcher = new TokensWatcher(
        this.#opts.tokensFile,
        this.#opts.tokensReloadDebounceMs,
        () => {
          this.reloadTokens().catch(() => {
            /* logged by reloadTokens */
          });
        },
        this.#log,
      );
      this.#watcher.start();
    }
    this.server.listen(this.#opts.port, this.#opts.host);
    await once(this.server, 'listening');
    this.#listening = true;
    const address = this.server.address() as AddressInfo;
    await this.#fleet?.start(address.port);
    this.#log.info({ event: 'gateway_listening', address: address.address, port: address.port, tls: this.#opts.tls !== undefined }, 'gateway listening');
    return address;
  }

  get replicaId(): string | undefined {
    return this.#fleet?.replicaId;
  }

  clusters(): ClusterInfo[] {
    return this.#clusters
      .all()
      .map((c) => c.info())
      .sort((a, b) => a.cluster.localeCompare(b.cluster));
  }

  async allClusters(): Promise<ClusterInfo[]> {
    const local = this.clusters();
    return this.#fleet === undefined ? local : this.#fleet.clusters(local);
  }

  async openStream(cluster: string, preamble: Omit<StreamPreamble, 'v'>): Promise<Duplex> {
    // A draining replica of a fleet serves on (its agents are moving, others are reached through their replicas) until it exits.
    if (this.#draining && this.#fleet === undefined) throw new TunnelError('PT_ERR_DRAINING');
    const runnerId = preamble.runnerId;
    const runner = runnerId !== undefined ? this.#tokens.runnerById(runnerId) : undefined;
    // The runner's groups travel from the tokens file, never from the request (the agent impersonates them with access_as: runner).
    const groups = preamble.groups ?? runner?.groups;
    const full = { ...preamble, cluster: preamble.cluster ?? cluster, ...(groups !== undefined && groups.length > 0 ? { groups: [...groups] } : {}) };
    // A cluster whose tunnel another replica holds is reached through that replica.
    const stream =
      this.#usable(cluster) !== undefined || this.#fleet === undefined ? this.#openLocal(cluster, full) : await this.#fleet.openRemote(cluster, full);
    // The runner's byte rate, if limited, paces the credit the agent gets for its answers (its scheduling group is set when the stream opens).
    if (runner !== undefined) stream.setGrantPacer(this.#limiter.pacer(runner.id, this.#limitsFor(runner)));
    return stream;
  }

  #usable(cluster: string): AgentConnection | undefined {
    const conn = this.#clusters.get(cluster);
    return conn === undefined || conn.closed || conn.session.remoteGoAway ? undefined : conn;
  }

  /** A stream to the agent of `cluster` on this replica (never through another replica). */
  #openLocal(cluster: string, preamble: Omit<StreamPreamble, 'v'>): Stream {
    const conn = this.#usable(cluster);
    if (conn === undefined) throw new TunnelError('PT_ERR_CLUSTER_NOT_CONNECTED', `cluster ${cluster} is not connected`);
    return conn.openStream(preamble);
  }

  /** A newer claim on another replica won `cluster`: new requests go there; the session here ends once its streams have (within drain_timeout). */
  #evict(cluster: string, sessionId: string): void {
    const conn = this.#clusters.get(cluster);
    if (conn === undefined || conn.sessionId !== sessionId || !this.#clusters.delete(conn)) return;
    this.#metrics.sessions.dec();
    this.#sessions.emit('released', conn);
    // The winner's session id goes to the agent (asked of the registry, a few ms): if another agent won, this one stands by.
    void (this.#fleet?.holder(cluster) ?? Promise.resolve(undefined)).then((replacedBy) => {
      conn.log.warn(
        { event: 'agent_replaced', code: 'PT_ERR_SESSION_REPLACED', where: 'another replica', bySessionId: replacedBy },
        'session replaced by a newer one for the same cluster on another replica',
      );
      return conn.shutdown(this.#opts.drainTimeoutMs, replacedError(replacedBy));
    });
  }

  /**
   * Whether a session holds `cluster`, on this replica or (in a fleet) on
   * another: the dial of an agent a newer session replaced is then refused.
   * An unreachable registry answers no (the dial goes ahead).
   */
  async #held(cluster: string): Promise<boolean> {
    if (this.#usable(cluster) !== undefined) return true;
    return this.#fleet !== undefined && (await this.#fleet.holder(cluster)) !== undefined;
  }

  /** A runner's limits: the gateway's defaults under what its tokens-file entry sets. */
  #limitsFor(runner: RunnerIdentity): RunnerLimits {
    return { ...defaultRunnerLimits, ...this.#opts.runnerLimits, ...runner.limits };
  }

  reloadTokens(): Promise<void> {
    // Serialise reloads so a slow one never overwrites a newer one.
    const run = this.#reloading.then(() => this.#reloadOnce());
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reloadOnce(): Promise<void> {
    if (this.#opts.tokensFile === undefined) return;
    let store: TokenStore;
    try {
      store = await loadTokensFile(this.#opts.tokensFile);
    } catch (err) {
      this.#metrics.tokenReloads.inc({ result: 'error' });
      this.#log.error({ event: 'tokens_reload_failed', code: (err as TunnelError).code, err }, 'tokens reload failed; keeping the previous tokens');
      throw err;
    }
    this.#tokens = store;
    this.#metrics.tokenReloads.inc({ result: 'ok' });
    this.#log.info({ event: 'tokens_reloaded', ...store.counts }, 'tokens reloaded');
    for (const conn of [...this.#clusters.all(), ...this.#pending]) {
      if (!store.agentStillValid(conn.tokenId, conn.cluster)) {
        conn.log.warn({ event: 'agent_revoked', code: 'PT_ERR_AUTH_REJECTED' }, 'agent token revoked; disconnecting');
        void conn.shutdown(1_000, { code: 'PT_ERR_AUTH_REJECTED', message: 'agent token revoked' });
      }
    }
    this.#runnerRoutes.revoke(store);
  }

  close(deadlineMs: number = this.#opts.drainTimeoutMs): Promise<void> {
    this.#closing ??= this.#close(deadlineMs);
    return this.#closing;
  }

  async #close(deadlineMs: number): Promise<void> {
    this.#draining = true;
    this.#watcher?.close();
    const conns = this.#clusters.all();
    this.#log.info({ event: 'gateway_draining', agents: conns.length, deadlineMs }, 'gateway draining');
    for (const conn of this.#pending) conn.abort();
    const started = Date.now();
    if (this.#fleet !== undefined) {
      // Runners on tunnel-client move first (their next session lands elsewhere), then the agents.
      this.#runners.goAway();
      await this.#handOver(conns, deadlineMs);
    }
    for (const conn of conns) conn.drain('gateway draining');
    // Keep listening while draining: /ready answers 503 (load balancers take us out) and new
    // agents get a 503 upgrade refusal they retry elsewhere, rather than a refused connection.
    await waitIdle(conns, Math.max(1, deadlineMs - (Date.now() - started)));
    const left = Math.max(1, deadlineMs - (Date.now() - started));
    await Promise.all([this.#runners.close(Math.min(left, 1_000)), this.#json.close()]);
    await Promise.all(conns.map((conn) => conn.shutdown(Math.min(left, 1_000))));
    for (const conn of this.#pending) conn.abort();
    await this.#endpoint.close();
    await this.#fleet?.close();
    await this.#audit.close();
    if (this.#listening) {
      const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      // closeAllConnections() ends only the connections Node's HTTP server still tracks; an upgraded socket
      // some route kept (it should not) would hold close() for ever. Past the deadline, none is left.
      const late = setTimeout(
        () => {
          if (this.#sockets.size > 0)
            this.#log.warn({ event: 'gateway_close_forced', sockets: this.#sockets.size }, 'connections still open at the close deadline: destroyed');
          for (const socket of this.#sockets) socket.destroy();
        },
        Math.max(1, deadlineMs - (Date.now() - started)),
      );
      late.unref();
      await serverClosed;
      clearTimeout(late);
    }
    this.#listening = false;
    this.#log.info({ event: 'gateway_closed', ms: Date.now() - started }, 'gateway closed');
  }

  /**
   * A fleet replica's first step out: each agent is asked to dial again (no
   * GoAway: its session keeps serving), reaches another replica through the
   * load balancer, and its claim there ends the session here (see #evict).
   * Resolves when every session is gone or moved, or at half the deadline.
   */
  async #handOver(conns: AgentConnection[], deadlineMs: number): Promise<void> {
    const moving = new Set(conns.filter((c) => !c.closed && this.#clusters.get(c.cluster) === c));
    if (moving.size === 0) return;
    this.#log.info({ event: 'gateway_handover', agents: moving.size }, 'asking every agent to move to another replica');
    for (const conn of moving) conn.send({ type: 'reconnect', reason: 'gateway draining' });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(1, Math.floor(deadlineMs / 2)));
      timer.unref();
      const onMoved = (conn: AgentConnection): void => {
        moving.delete(conn);
        if (moving.size === 0) done();
      };
      const sessions = this.#sessions;
      sessions.on('released', onMoved);
      function done(): void {
        clearTimeout(timer);
        sessions.off('released', onMoved);
        resolve();
      }
    });
  }

  #onAgent(ws: WebSocket, identity: AgentIdentity, remoteAddress: string | undefined): void {
    const conn = new AgentConnection(ws, identity, remoteAddress, {
      logger: this.#log,
      metrics: this.#metrics,
      gatewayVersion: this.#opts.gatewayVersion,
      handshakeTimeoutMs: this.#opts.handshakeTimeoutMs,
      mux: this.#opts.mux,
      onReady: (c) => this.#onReady(c),
      onClosed: (c) => this.#onClosed(c),
    });
    this.#pending.add(conn);
    this.#metrics.track(conn, () => conn.session.stats);
    conn.log.debug({ event: 'agent_upgraded' }, 'agent WebSocket upgraded; waiting for hello');
  }

  #onReady(conn: AgentConnection): void {
    this.#pending.delete(conn);
    if (this.#draining) {
      void conn.shutdown(1, { code: 'PT_ERR_DRAINING', message: 'gateway is draining' });
      return;
    }
    const previous = this.#clusters.set(conn);
    if (previous) {
      previous.log.warn(
        { event: 'agent_replaced', code: 'PT_ERR_SESSION_REPLACED', bySessionId: conn.sessionId },
        'session replaced by a newer one for the same cluster',
      );
      void previous.shutdown(1_000, replacedError(conn.sessionId));
      this.#fleet?.released({ cluster: previous.cluster, sessionId: previous.sessionId }, false);
    } else {
      this.#metrics.sessions.inc();
    }
    void this.#fleet?.claim({ cluster: conn.cluster, sessionId: conn.sessionId });
    this.#metrics.connects.inc();
    this.emit('agent-connected', conn.cluster);
  }

  #onClosed(conn: AgentConnection): void {
    this.#pending.delete(conn);
    this.#metrics.untrack(conn);
    if (this.#clusters.delete(conn)) {
      this.#fleet?.released({ cluster: conn.cluster, sessionId: conn.sessionId }, true);
      this.#sessions.emit('released', conn);
      this.#metrics.sessions.dec();
      conn.log.info({ event: 'agent_disconnected', streamsActive: conn.streamsActive }, 'agent disconnected');
      this.emit('agent-disconnected', conn.cluster);
    } else if (conn.ready) {
      conn.log.info({ event: 'agent_disconnected', replaced: true }, 'replaced agent session closed');
    }
  }
}

/** The control error a replaced session gets, naming the session that replaced it when known. */
function replacedError(replacedBy: string | undefined): { code: string; message: string; replacedBy?: string } {
  return {
    code: 'PT_ERR_SESSION_REPLACED',
    message: 'a newer session for this cluster replaced this one',
    ...(replacedBy !== undefined ? { replacedBy } : {}),
  };
}

function waitIdle(conns: AgentConnection[], deadlineMs: number): Promise<void> {
  const busy = conns.filter((c) => c.streamsActive > 0 && !c.closed);
  if (busy.length === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let left = busy.length;
    const timer = setTimeout(done, deadlineMs);
    timer.unref();
    function done(): void {
      clearTimeout(timer);
      for (const c of busy) c.off('idle', onIdle);
      resolve();
    }
    function onIdle(): void {
      if (--left === 0) done();
    }
    for (const c of busy) c.once('idle', onIdle);
  });
}
