import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createAuditSink, type AuditSink, type OwnerPolicyReport, type StreamKind } from '@pipeops/tunnel-protocol';
import type { AgentOptions, ReadinessCheck, StatusExtras } from './config.ts';
import { defaultAgentOptions, verifyAgentOptions } from './config.ts';
import { Connector } from './connector.ts';
import { AgentError } from './errors.ts';
import { HealthServer } from './health-server.ts';
import type { Readiness } from './health-server.ts';
import { AgentMetrics } from './metrics.ts';
import type { AgentState } from './metrics.ts';
import { StreamDispatcher } from './streams.ts';
import { createKubePath } from './kube/kube-path.ts';
import type { KubePath } from './kube/kube-path.ts';
import type { StreamHandler } from './streams.ts';
import { defaultAgentPolicy, policySummary, verifyAgentPolicy } from './kube/policy.ts';

/** Injected dependencies of {@link createAgent}. */
export interface AgentDeps {
  logger: Logger;
  registry: Registry;
}

/** A running agent (see docs/contracts.md). */
export interface Agent extends EventEmitter {
  /** Starts the health listener and the connector; resolves when listening (not when connected). */
  start(): Promise<void>;
  /** Graceful: stop dialing, GoAway, let in-flight streams finish up to `deadlineMs` (default 5_000), close everything. Idempotent. */
  close(deadlineMs?: number): Promise<void>;
  readonly state: AgentState;
  readonly healthAddress: AddressInfo | undefined;
  /** Resolves after close(); rejects with `PT_ERR_AUTH_REJECTED` (exit 3) or `PT_ERR_RECONNECT_EXHAUSTED` (exit 4). */
  readonly done: Promise<void>;
  /** Serves inbound streams of `kind` (built in: `ping`). */
  registerStreamHandler(kind: StreamKind, handler: StreamHandler): void;
  /** What GET /ready answers right now. */
  readiness(): Readiness;
  /** Inbound streams being served now. */
  readonly activeStreams: number;
  /** Inbound streams taken since the agent was made, over every session (served, refused or failed). */
  readonly streamsAccepted: number;
  on(e: 'connected', l: (info: { sessionId: string }) => void): this;
  on(e: 'disconnected', l: (info: { reason: string }) => void): this;
  on(e: 'state', l: (state: AgentState) => void): this;
}

class TunnelAgent extends EventEmitter implements Agent {
  readonly #log: Logger;
  readonly #connector: Connector;
  readonly #dispatcher: StreamDispatcher;
  readonly #health: HealthServer;
  readonly #kube: KubePath | undefined;
  readonly #audit: AuditSink;
  readonly #checks: ReadinessCheck[];
  #started = false;
  #closing: Promise<void> | undefined;

  constructor(options: AgentOptions, deps: AgentDeps) {
    super();
    verifyAgentOptions(options);
    this.#log = deps.logger.child({ component: 'agent' });
    const metrics = new AgentMetrics(deps.registry);
    this.#dispatcher = new StreamDispatcher({ logger: deps.logger.child({ component: 'streams' }), metrics, preambleTimeoutMs: options.timeoutMs });
    this.#checks = [...(options.readinessChecks ?? [])];
    const policy = options.policy !== undefined ? verifyAgentPolicy(options.policy) : defaultAgentPolicy;
    const accessAs = options.kubernetes.accessAs ?? 'agent';
    this.#audit = createAuditSink({ file: options.audit?.file, logger: deps.logger.child({ component: 'kube' }), message: 'kube request' });
    // The owner's choices travel in hello and every status report, so the control plane shows what it may do here.
    const ownerPolicy: OwnerPolicyReport = { access_as: accessAs, ...policySummary(policy) };
    this.#log.info({ event: 'owner_policy', policy: ownerPolicy, audit: this.#audit.destination }, 'owner policy in force');
    let connectorOptions: AgentOptions & { ownerPolicy?: OwnerPolicyReport } = { ...options, ownerPolicy };
    if (options.kubernetes.enabled !== false) {
      const kube = createKubePath(
        {
          ...options.kubernetes,
          apiHealthIntervalMs: options.kubernetes.apiHealthIntervalMs ?? options.pollIntervalMs,
          admission: { accessAs, policy },
        },
        { logger: deps.logger.child({ component: 'kube' }), registry: deps.registry, audit: this.#audit },
      );
      this.#kube = kube;
      this.#dispatcher.register('http', kube.handler);
      if (kube.readinessCheck !== undefined) this.#checks.push(kube.readinessCheck);
      const user = options.statusProvider;
      connectorOptions = {
        ...connectorOptions,
        statusProvider: async (): Promise<StatusExtras> => ({ ...kube.status(), ...(user !== undefined ? await user() : {}) }),
      };
    }
    this.#connector = new Connector({
      options: connectorOptions,
      logger: deps.logger.child({ component: 'connector' }),
      metrics,
      dispatcher: this.#dispatcher,
    });
    this.#connector.on('connected', (info) => this.emit('connected', info));
    this.#connector.on('disconnected', (info) => this.emit('disconnected', info));
    this.#connector.on('state', (s) => this.emit('state', s));
    this.#health = new HealthServer({
      host: options.listenHost ?? defaultAgentOptions.listenHost,
      port: options.port,
      registry: deps.registry,
      logger: deps.logger.child({ component: 'health' }),
      readiness: () => this.readiness(),
    });
  }

  get state(): AgentState {
    return this.#connector.state;
  }

  get healthAddress(): AddressInfo | undefined {
    return this.#health.address;
  }

  get done(): Promise<void> {
    return this.#connector.done;
  }

  get activeStreams(): number {
    return this.#dispatcher.active;
  }

  get streamsAccepted(): number {
    return this.#dispatcher.accepted;
  }

  registerStreamHandler(kind: StreamKind, handler: StreamHandler): void {
    this.#dispatcher.register(kind, handler);
  }

  readiness(): Readiness {
    const state = this.#connector.state;
    if (state !== 'connected') return { ready: false, reason: `tunnel ${state}` };
    for (const c of this.#checks) {
      let r: boolean | string;
      try {
        r = c.check();
      } catch (err) {
        r = `check failed: ${(err as Error).message}`;
      }
      if (r !== true) return { ready: false, reason: typeof r === 'string' ? `${c.name}: ${r}` : c.name };
    }
    return { ready: true };
  }

  async start(): Promise<void> {
    if (this.#closing !== undefined) throw new AgentError('PT_ERR_AGENT_CLOSED');
    if (this.#started) return;
    this.#started = true;
    const address = await this.#health.start();
    this.#log.info({ health: `${address.address}:${address.port}` }, 'health listener ready');
    this.#kube?.start();
    this.#connector.start();
  }

  close(deadlineMs = 5_000): Promise<void> {
    this.#closing ??= (async () => {
      this.#log.info({ deadlineMs }, 'agent closing');
      await this.#connector.close(deadlineMs);
      await this.#kube?.close();
      await this.#audit.close();
      await this.#health.close();
      this.#log.info('agent closed');
    })();
    return this.#closing;
  }
}

/**
 * Creates the agent. Throws `PT_ERR_CONFIG` (naming the field) for invalid
 * options, including an unreadable `tls.caFile`.
 */
export function createAgent(options: AgentOptions, deps: AgentDeps): Agent {
  return new TunnelAgent(options, deps);
}
