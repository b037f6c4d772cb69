import type { Agent as HttpAgent } from 'node:http';
import type { RequestOptions } from 'node:https';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';
import type { ClientOptions } from 'ws';
import type { TunnelDispatcher } from './dispatcher.ts';

/** What {@link TunnelKubeConfig} routes through. */
export interface TunnelKubeConfigOptions {
  /** Cluster name, used for the kubeconfig's cluster and context. */
  cluster: string;
  /** The origin the dispatcher serves (the kubeconfig's `server`). */
  server: string;
  /** Carries fetch-based calls: every generated API, Watch, Log, health. */
  dispatcher: TunnelDispatcher;
  /** Carries ws-based calls: Exec, Attach, PortForward, Cp. */
  httpAgent: HttpAgent;
}

/**
 * A `@kubernetes/client-node` `KubeConfig` whose traffic goes through the tunnel.
 *
 * client-node 2 sends everything through two public hooks, both overridden here:
 * `applySecurityAuthentication(context)` — its result's undici dispatcher
 * carries every generated API call, `Watch`, `Log` and health checks — and
 * `applyToHTTPSOptions(opts)` — its `agent` carries the `ws` WebSockets of
 * `Exec`, `Attach`, `PortForward` and `Cp`. The server is the tunnel's base
 * URL (`http://…​.invalid`, never resolved); no local port is opened. The
 * kubeconfig holds no credentials: the gateway authenticates the tunnel, and
 * the agent uses its own credentials toward the API server.
 */
export class TunnelKubeConfig extends KubeConfig {
  readonly #dispatcher: TunnelDispatcher;
  readonly #httpAgent: HttpAgent;

  constructor(options: TunnelKubeConfigOptions) {
    super();
    this.#dispatcher = options.dispatcher;
    this.#httpAgent = options.httpAgent;
    const name = options.cluster;
    // skipTLSVerify: client-node refuses an http:// server without it; there is no TLS to the base URL (the tunnel itself is TLS).
    this.loadFromOptions({
      clusters: [{ name, server: options.server, skipTLSVerify: true }],
      users: [{ name: 'pipeops-tunnel' }],
      contexts: [{ name, cluster: name, user: 'pipeops-tunnel' }],
      currentContext: name,
    });
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    context.setDispatcher(this.#dispatcher);
  }

  override async applyToHTTPSOptions(opts: RequestOptions | ClientOptions): Promise<void> {
    await super.applyToHTTPSOptions(opts);
    opts.agent = this.#httpAgent;
  }
}
