import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { resolveConnectOptions, type ConnectOptions, type ResolvedConnectOptions } from './config.ts';
import { TunnelConnection, type TunnelState } from './connection.ts';
import { TunnelDispatcher } from './dispatcher.ts';
import { TunnelHttpAgent } from './internal/http-agent.ts';
import { TunnelKubeConfig } from './kube-config.ts';
import { startLocalProxy, type ListenOptions, type LocalProxy } from './local-proxy.ts';
import { RESUME_HEADER } from './resume/resume-plan.ts';
import { sendRequest, watchEvents, type TunnelRequest, type TunnelResponse, type TunnelStreamResponse, type WatchEvent, type WatchOptions } from './request.ts';

/**
 * A runner's tunnel to one cluster, from {@link connect}. Every request is a
 * new yamux stream on one WebSocket to the gateway, which bridges it to the
 * cluster's agent; the agent replays it to the API server with its own
 * credentials.
 *
 * Events: `'state'` ({@link TunnelState}), `'connected'`, `'disconnected'`
 * (`{ reason }`), `'closed'` (the error that closed it, or undefined).
 */
export class Tunnel extends EventEmitter {
  /** The origin {@link dispatcher} serves, e.g. `http://kubernetes.tunnel.invalid`. */
  readonly baseUrl: string;
  /** The cluster this tunnel reaches. */
  readonly cluster: string;
  /** The `runner_id` sent to the gateway. */
  readonly runnerId: string;
  /**
   * An undici `Dispatcher` for {@link baseUrl}: `fetch(url, { dispatcher })`,
   * and undici's `request`, `stream`, `pipeline`, `upgrade`. One stream per request.
   */
  readonly dispatcher: TunnelDispatcher;
  readonly #connection: TunnelConnection;
  readonly #logger: Logger;
  readonly #httpAgent: TunnelHttpAgent;
  readonly #proxies = new Set<LocalProxy>();
  readonly #resumeEnabled: boolean;
  #closing: Promise<void> | undefined;

  /** @internal use {@link connect}. */
  constructor(options: ResolvedConnectOptions, logger: Logger) {
    super();
    this.#logger = logger;
    this.#resumeEnabled = options.resume.enabled;
    this.baseUrl = options.baseUrl.origin;
    this.cluster = options.cluster;
    this.runnerId = options.runnerId;
    this.#connection = new TunnelConnection(options, logger);
    for (const e of ['state', 'connected', 'disconnected', 'closed'] as const) {
      this.#connection.on(e, (arg: unknown) => this.emit(e, arg));
    }
    const open = (): Promise<Duplex> => this.#connection.openStream();
    this.dispatcher = new TunnelDispatcher(this.baseUrl, (waitMs) => this.#connection.openStream(waitMs), {
      resume: options.resume,
      reconnect: options.reconnect,
      logger,
    });
    this.#httpAgent = new TunnelHttpAgent(open);
  }

  /** @internal */
  start(): Promise<void> {
    return this.#connection.start();
  }

  /** Where the tunnel's WebSocket is. */
  get state(): TunnelState {
    return this.#connection.state;
  }

  /** Sessions opened after the first one. */
  get reconnects(): number {
    return this.#connection.reconnects;
  }

  /**
   * Tunnel streams open now (each request, WATCH, exec or port-forward holds
   * one until both sides have ended it): back to 0 once nothing is in flight.
   */
  get activeStreams(): number {
    return this.#connection.activeStreams;
  }

  /**
   * Node's built-in `fetch` through this tunnel, typed as the global one: a
   * path (`'/version'`) is taken relative to {@link baseUrl}. For TypeScript
   * users of the global fetch: `fetch(url, { dispatcher: tunnel.dispatcher })`
   * works at run time too, but Node's `RequestInit` types its `dispatcher` as
   * the undici bundled with Node (7.x), not undici 8's. A WATCH or a
   * `logs -f` with timestamps survives a tunnel drop (see `ResumeOptions`);
   * `resume: false` turns that off for this call.
   */
  fetch(input: string | URL | Request, init: RequestInit & { resume?: boolean } = {}): Promise<Response> {
    const target = typeof input === 'string' && input.startsWith('/') ? `${this.baseUrl}${input}` : input;
    // The dispatcher adapts the older handler API Node's fetch dispatches with (legacy-handler.ts); only the types differ.
    const dispatcher = this.dispatcher as unknown as NonNullable<RequestInit['dispatcher']>;
    const { resume, ...rest } = init;
    if (resume !== false) return globalThis.fetch(target, { ...rest, dispatcher });
    const headers = new Headers(rest.headers);
    headers.set(RESUME_HEADER, 'off');
    return globalThis.fetch(target, { ...rest, headers, dispatcher });
  }

  /** Opens a raw stream to the cluster's API server: write one HTTP/1.1 request (origin-form), read one response. */
  openStream(): Promise<Duplex> {
    return this.#connection.openStream();
  }

  /**
   * A `@kubernetes/client-node` `KubeConfig` whose traffic goes through this
   * tunnel: `makeApiClient(CoreV1Api)`, `Watch`, `Log`, `Exec`, `Attach`,
   * `PortForward` all work. Its server is {@link baseUrl}; it holds no credentials.
   */
  kubeConfig(): TunnelKubeConfig {
    return new TunnelKubeConfig({ cluster: this.cluster, server: this.baseUrl, dispatcher: this.dispatcher, httpAgent: this.#httpAgent });
  }

  /**
   * One request in the original VM agent's message shape. Without `stream`,
   * resolves with `{ id, status, headers, body }` (body parsed when JSON) for
   * any status. With `stream: true`, resolves with the status and headers and
   * an async iterable of chunks (WATCH events as objects, log lines as
   * strings); a status ≥ 300 rejects with `PT_ERR_CLIENT_HTTP` (body attached).
   */
  request(msg: TunnelRequest & { stream: true }): Promise<TunnelStreamResponse>;
  request(msg: TunnelRequest & { stream?: false | undefined }): Promise<TunnelResponse>;
  request(msg: TunnelRequest): Promise<TunnelResponse | TunnelStreamResponse>;
  request(msg: TunnelRequest): Promise<TunnelResponse | TunnelStreamResponse> {
    return sendRequest(this.dispatcher, this.baseUrl, msg);
  }

  /**
   * WATCH events of a collection (`path` without `?watch`), e.g.
   * `/api/v1/namespaces/default/pods`. Break the loop to stop. A tunnel drop
   * does not end it: it goes on from the last resourceVersion once the tunnel
   * is back (`resume: false` turns that off).
   */
  watch<T = Record<string, unknown>>(path: string, options: WatchOptions = {}): AsyncGenerator<WatchEvent<T>> {
    return watchEvents<T>((m) => this.request(m), path, options);
  }

  /**
   * Starts a local plain-HTTP endpoint forwarding everything (upgrades
   * included) through the tunnel. A WATCH or a `logs -f` with timestamps
   * survives a tunnel drop (header `x-pipeops-resume: off` opts a request
   * out). Closed by {@link close} too.
   */
  async listen(options: ListenOptions = {}): Promise<LocalProxy> {
    const resuming = this.#resumeEnabled ? { dispatcher: this.dispatcher, origin: this.baseUrl } : undefined;
    const proxy = await startLocalProxy(() => this.openStream(), options, this.#logger, resuming);
    this.#proxies.add(proxy);
    return {
      url: proxy.url,
      port: proxy.port,
      host: proxy.host,
      close: async () => {
        this.#proxies.delete(proxy);
        await proxy.close();
      },
    };
  }

  /** Closes local proxies, the dispatcher and the session, and stops reconnecting. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#proxies].map((p) => p.close()));
      this.#proxies.clear();
      this.#httpAgent.destroy();
      await this.dispatcher.destroy().catch(() => {});
      await this.#connection.close();
    })();
    return this.#closing;
  }
}

/**
 * Opens a tunnel to `options.cluster` through the gateway: one WebSocket to
 * `GET {gatewayUrl}/ws/runner?runner_id=…&cluster=…` (Bearer runner token,
 * subprotocol `pipeops-tunnel.v1`) carrying yamux. Resolves once the first
 * session is up. Rejects with `PT_ERR_CLIENT_CONFIG` (bad option),
 * `PT_ERR_AUTH_REJECTED` (401/403 on the upgrade; not retried) or
 * `PT_ERR_CLIENT_DIAL_FAILED` (no session within `connectTimeoutMs`).
 */
export async function connect(options: ConnectOptions): Promise<Tunnel> {
  const resolved = resolveConnectOptions(options);
  const logger = (options.logger ?? pino({ enabled: false })).child({ component: 'tunnel-client', cluster: resolved.cluster });
  const tunnel = new Tunnel(resolved, logger);
  try {
    await tunnel.start();
  } catch (err) {
    await tunnel.close();
    throw err;
  }
  return tunnel;
}
