import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { auditDenyRules, DeferredCounter, type AuditDenyRule } from '@pipeops/tunnel-protocol';
import { codeClass, kubeVerbs } from './verb.ts';
import type { KubeVerb } from './verb.ts';

/** Values of the `reason` label of `pipeops_tunnel_k8s_upstream_errors_total`. */
export const upstreamErrorReasons = ['connect', 'tls', 'timeout', 'reset', 'credentials', 'other'] as const;
export type UpstreamErrorReason = (typeof upstreamErrorReasons)[number];

/** Metrics of the Kubernetes proxy; labels only from fixed sets. */
export class KubeMetrics {
  readonly #requests: DeferredCounter<'verb' | 'code'>;
  readonly #duration: Histogram<'verb'>;
  readonly upgradesActive: Gauge;
  readonly watchesActive: Gauge;
  readonly #upstreamErrors: Counter<'reason'>;
  readonly #denied: Counter<'rule'>;
  // The label-bound series of every request's duration, looked up once per verb (prom-client would find
  // the series by its labels on every observe()); the request counter is held until a scrape reads it.
  readonly #durationBy = new Map<KubeVerb, Histogram.Internal<'verb'>>();

  constructor(register: Registry) {
    const registers = [register];
    this.#requests = new DeferredCounter<'verb' | 'code'>(
      new Counter({
        name: 'pipeops_tunnel_k8s_requests_total',
        help: 'API-server requests proxied, by verb and status class',
        labelNames: ['verb', 'code'],
        registers,
      }),
    );
    this.#duration = new Histogram({
      name: 'pipeops_tunnel_k8s_request_duration_seconds',
      help: 'API-server request duration (to the end of the response), by verb',
      labelNames: ['verb'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.upgradesActive = new Gauge({ name: 'pipeops_tunnel_k8s_upgrades_active', help: 'Upgraded exec/attach/port-forward connections open', registers });
    this.watchesActive = new Gauge({ name: 'pipeops_tunnel_k8s_watches_active', help: 'WATCH requests open', registers });
    this.#upstreamErrors = new Counter({
      name: 'pipeops_tunnel_k8s_upstream_errors_total',
      help: 'Failures talking to the API server, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.#denied = new Counter({
      name: 'pipeops_tunnel_policy_denied_total',
      help: 'Requests the agent refused before the API server, by rule (impersonation, the owner policy, identity, protocol)',
      labelNames: ['rule'],
      registers,
    });
    for (const verb of kubeVerbs) this.#duration.zero({ verb });
    // Every label value of a fixed set exists from the start at 0: the first event is then an increase an alert's
    // rate() or increase() sees (a series born at 1 has none).
    for (const reason of upstreamErrorReasons) this.#upstreamErrors.inc({ reason }, 0);
    for (const rule of auditDenyRules) this.#denied.inc({ rule }, 0);
  }

  /** One finished request. */
  observe(verb: KubeVerb, status: number | undefined, seconds: number): void {
    const code = codeClass(status);
    this.#requests.add(`${verb} ${code}`, { verb, code });
    let duration = this.#durationBy.get(verb);
    if (duration === undefined) {
      duration = this.#duration.labels({ verb });
      this.#durationBy.set(verb, duration);
    }
    duration.observe(seconds);
  }

  /** One request refused by the agent (rule from the fixed {@link AuditDenyRule} set). */
  denied(rule: AuditDenyRule): void {
    this.#denied.inc({ rule });
  }

  upstreamError(reason: UpstreamErrorReason): void {
    this.#upstreamErrors.inc({ reason });
  }
}

/** Classifies an undici / TLS / credential error for the `reason` label. */
export function upstreamErrorReason(err: unknown): UpstreamErrorReason {
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  const message = String((err as { message?: unknown } | null)?.message ?? '');
  if (code === 'PT_ERR_KUBE_CREDENTIALS') return 'credentials';
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'ETIMEDOUT') return 'timeout';
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /certificate|self[- ]signed|SSL|TLS/i.test(`${code} ${message}`)) return 'tls';
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EAI_AGAIN') return 'connect';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return 'reset';
  return 'other';
}
