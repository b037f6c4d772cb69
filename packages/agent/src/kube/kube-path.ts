import type { Logger } from 'pino';
import { createAuditSink, type AuditSink } from '@pipeops/tunnel-protocol';
import type { Registry } from 'prom-client';
import type { ReadinessCheck, StatusExtras } from '../config.ts';
import type { StreamHandler } from '../streams.ts';
import type { AdmissionOptions } from './admission.ts';
import { defaultAgentPolicy } from './policy.ts';
import { ApiHealth } from './api-health.ts';
import { NOT_CONFIGURED, loadKubeCredentials } from './credentials.ts';
import type { KubeCredentialsOptions } from './credentials.ts';
import { createKubeProxy } from './http-handler.ts';
import { KubeMetrics } from './kube-metrics.ts';
import { KubeUpstream } from './upstream.ts';
import type { KubeUpstreamOptions } from './upstream.ts';

/** Options of {@link createKubePath}. */
export interface KubePathOptions extends KubeCredentialsOptions {
  /** API-server check period, ms (the agent passes `kubernetes.apiHealthIntervalMs ?? pollIntervalMs`). */
  apiHealthIntervalMs: number;
  upstream?: KubeUpstreamOptions;
  /** Who the agent acts as at the API server, and the cluster owner's policy. Default: the agent's own credentials, everything allowed. */
  admission?: AdmissionOptions;
}

/** The agent's Kubernetes path: the `http` stream handler and its readiness/status hooks. */
export interface KubePath {
  handler: StreamHandler;
  /** `/ready` condition: API credentials usable and a recent successful API-server check. `undefined` when no Kubernetes access is configured at all. */
  readinessCheck: ReadinessCheck | undefined;
  /** Status-report fields (`apiServer`). */
  status(): StatusExtras;
  start(): void;
  close(): Promise<void>;
}

/**
 * Loads credentials and builds the proxy. Never throws: unusable credentials
 * become a not-ready reason and 503 answers; no configuration at all (no
 * kubeconfig anywhere, not in a cluster) leaves `/ready` alone and answers 503.
 */
export function createKubePath(o: KubePathOptions, deps: { logger: Logger; registry: Registry; audit?: AuditSink }): KubePath {
  const log = deps.logger;
  const admission = o.admission ?? { accessAs: 'agent', policy: defaultAgentPolicy };
  const audit = deps.audit ?? createAuditSink({ logger: log, message: 'kube request' });
  const metrics = new KubeMetrics(deps.registry);
  let loaded: ReturnType<typeof loadKubeCredentials> | Error;
  try {
    loaded = loadKubeCredentials(o);
  } catch (err) {
    loaded = err as Error;
  }
  if (loaded === NOT_CONFIGURED || loaded instanceof Error) {
    const reason = loaded === NOT_CONFIGURED ? 'no kubeconfig found and not in a cluster' : loaded.message;
    if (loaded === NOT_CONFIGURED) log.warn({ reason }, 'no Kubernetes API access configured: http streams are answered 503');
    else log.error({ err: { code: (loaded as { code?: unknown }).code, message: reason } }, 'Kubernetes credentials unusable: http streams are answered 503');
    const proxy = createKubeProxy({ access: { unavailable: reason }, metrics, admission, audit });
    return {
      handler: proxy.handler,
      readinessCheck: loaded === NOT_CONFIGURED ? undefined : { name: 'kubernetes', check: () => reason },
      status: () => ({ apiServer: { reachable: false, error: reason } }),
      start() {},
      async close() {},
    };
  }
  const credentials = loaded;
  const upstream = new KubeUpstream(credentials.serverUrl, o.upstream);
  const health = new ApiHealth({ credentials, upstream, logger: log, intervalMs: o.apiHealthIntervalMs });
  const proxy = createKubeProxy({ access: { credentials, upstream }, metrics, admission, audit });
  log.info({ server: credentials.serverUrl.origin, source: credentials.source }, 'Kubernetes API access configured');
  return {
    handler: proxy.handler,
    readinessCheck: { name: 'apiServer', check: () => health.readiness() },
    status: () => ({ apiServer: health.status() }),
    start: () => health.start(),
    async close() {
      health.close();
      await upstream.close();
    },
  };
}
