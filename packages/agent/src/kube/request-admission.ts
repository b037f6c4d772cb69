// Whether one request read from a stream goes to the API server, and how:
// the checks both relays (plain and upgrade) run before anything is sent —
// the request target and Host, the relay's own protocol check, the trust
// boundary (admission.ts) — then the agent's credentials and connection.
import type { Dispatcher } from 'undici';
import { drain, type AuditDenyRule, type RequestInfo } from '@pipeops/tunnel-protocol';
import { admit } from './admission.ts';
import type { KubeCredentials } from './credentials.ts';
import type { Exchange, ExchangeResult, KubeProxyOptions, KubeRequest } from './exchange.ts';
import { recordExchange, refusedWith } from './exchange-record.ts';
import { targetProblem, upstreamRequestHeaders } from './headers.ts';
import { sendRawStatus } from './status.ts';
import type { UpstreamUse } from './upstream.ts';

/** The Status the agent answers instead of the API server, audited as denied when it names a rule. */
export interface Refusal {
  code: number;
  message: string;
  rule?: AuditDenyRule;
  error?: unknown;
}

/**
 * Answers `refusal` as a `Status` instead of the API server (a HEAD's
 * without a body, given its `method`), reads and drops the rest of the
 * request so the stream can close, and records the exchange.
 */
export function refuseExchange(ex: Exchange, result: ExchangeResult, o: KubeProxyOptions, refusal: Refusal, method?: string): void {
  drain(ex.stream);
  sendRawStatus(ex.stream, refusal.code, refusal.message, refusal.rule, method);
  refusedWith(result, refusal);
  recordExchange(ex, result, o);
}

/** Where an admitted request goes: the dispatcher to the API server, the headers to send, the credentials used (invalidated on a 401). */
export interface Upstream {
  dispatcher: Dispatcher;
  headers: string[];
  credentials: KubeCredentials;
}

/** How a request is to be relayed, for {@link admitRequest}. */
export interface RelayKind {
  /** An upgrade (exec, attach, port-forward). */
  upgrade: boolean;
  /** The relay's own refusal of the request's protocol (400), checked after the target. */
  protocolProblem: string | undefined;
  /** Which pool of connections to the API server carries it. */
  use: UpstreamUse;
}

/**
 * Admits one request (`info` is its request info) and resolves where it
 * goes; undefined when it goes nowhere: refused (answered with `refuse`) or
 * its stream closed meanwhile (recorded as it is).
 */
export async function admitRequest(
  req: KubeRequest,
  info: RequestInfo,
  ex: Exchange,
  o: KubeProxyOptions,
  kind: RelayKind,
  result: ExchangeResult,
  refuse: (refusal: Refusal) => void,
): Promise<Upstream | undefined> {
  const admitted = await admission(req, info, ex, o, kind);
  if ('refusal' in admitted) {
    refuse(admitted.refusal);
    return undefined;
  }
  if (ex.gone) {
    recordExchange(ex, result, o);
    return undefined;
  }
  return admitted.upstream;
}

/**
 * Admits or refuses one request: an unusable target or Host, or the relay's
 * `protocolProblem` → 400 (`protocol`); impersonation, the owner's policy, a
 * missing identity → 403 (their rule); no API access → 503; credentials
 * that cannot be obtained → 502.
 */
async function admission(
  req: KubeRequest,
  info: RequestInfo,
  ex: Exchange,
  o: KubeProxyOptions,
  kind: RelayKind,
): Promise<{ refusal: Refusal } | { upstream: Upstream }> {
  const problem = targetProblem(req.url, req.rawHeaders) ?? kind.protocolProblem;
  if (problem !== undefined) return { refusal: { code: 400, message: problem, rule: 'protocol' } };
  const admitted = admit(info, req.rawHeaders, ex.preamble, kind.upgrade, o.admission);
  if ('refusal' in admitted) return admitted;
  if ('unavailable' in o.access) return { refusal: { code: 503, message: `the agent has no Kubernetes API access: ${o.access.unavailable}` } };
  const { credentials, upstream } = o.access;
  try {
    const resolved = await credentials.resolve();
    return {
      upstream: {
        headers: upstreamRequestHeaders(req.rawHeaders, resolved.headers, admitted.headers),
        dispatcher: upstream.dispatcher(resolved.tls, kind.use),
        credentials,
      },
    };
  } catch (err) {
    o.metrics.upstreamError('credentials');
    return { refusal: { code: 502, message: `cannot obtain API-server credentials: ${(err as Error).message}`, error: err } };
  }
}
