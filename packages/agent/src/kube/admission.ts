// The agent's half of the trust boundary (issue 9), run on every request
// before anything is sent to the API server:
//   1. a runner never impersonates: any `Impersonate-*` header → 403;
//   2. the cluster owner's policy (agent config `policy`) → 403 naming the rule;
//   3. with `access_as: runner` the request carries the runner's identity
//      from the gateway session's preamble — never from the request itself;
//   4. the gateway's request id travels as `Audit-ID`, so the API server's
//      audit log and ours correlate.
import {
  findImpersonationHeader,
  impersonationRefusal,
  TunnelError,
  type AuditDenyRule,
  type RequestInfo,
  type StreamPreamble,
} from '@pipeops/tunnel-protocol';
import { evaluatePolicy, type AgentPolicy } from './policy.ts';

/** Who the agent acts as at the API server: its own credentials, or the runner (impersonated). */
export type AccessAs = 'agent' | 'runner';
/** The `access_as` values. */
export const ACCESS_AS_VALUES: readonly AccessAs[] = ['agent', 'runner'];

/** The user name a runner is impersonated as with `access_as: runner`. */
export function runnerUserName(runnerId: string): string {
  return `pipeops:runner:${runnerId}`;
}
/** The group every impersonated runner is in. */
export const RUNNERS_GROUP = 'pipeops:runners';

/** What the admission check needs from the agent's configuration. */
export interface AdmissionOptions {
  accessAs: AccessAs;
  policy: AgentPolicy;
}

/** A request the agent may send: the headers the agent adds (identity, `Audit-ID`). */
export interface Admitted {
  headers: string[];
}
/** A refused request: a 403 `Status` with this message, audited as denied by `rule`. */
export interface Refused {
  refusal: { code: 403; message: string; rule: AuditDenyRule };
}

/** Admits or refuses one request (its request info and raw headers) arriving on a stream with `preamble`. */
export function admit(info: RequestInfo, rawHeaders: readonly string[], preamble: StreamPreamble, upgrade: boolean, o: AdmissionOptions): Admitted | Refused {
  const forged = findImpersonationHeader(rawHeaders);
  if (forged !== undefined) return { refusal: { code: 403, message: impersonationRefusal(forged), rule: 'impersonation' } };
  const decision = evaluatePolicy(o.policy, info, { upgrade });
  if (!decision.allowed) return { refusal: { code: 403, message: decision.message, rule: decision.rule } };
  const headers: string[] = ['Audit-ID', preamble.requestId];
  if (o.accessAs === 'runner') {
    const runnerId = preamble.runnerId;
    if (runnerId === undefined || runnerId === '') {
      return { refusal: { code: 403, message: 'this agent acts as the runner (access_as: runner), and the stream names no runner', rule: 'identity' } };
    }
    headers.push('Impersonate-User', runnerUserName(runnerId), 'Impersonate-Group', RUNNERS_GROUP);
    for (const g of preamble.groups ?? []) headers.push('Impersonate-Group', g);
  }
  return { headers };
}

/** Thrown from a chunked request body whose trailers carry an impersonation header; the request is aborted before it completes upstream. */
export class ImpersonationTrailerError extends TunnelError {
  readonly header: string;
  constructor(header: string) {
    super('PT_ERR_FORBIDDEN', impersonationRefusal(header));
    this.name = 'ImpersonationTrailerError';
    this.header = header;
  }
}

/**
 * A chunked request body as undici reads it, checked at its end: when the
 * trailers carry an impersonation header the iterator throws before the
 * final chunk, so undici aborts the upstream request and the API server
 * never sees a complete one. (undici does not forward request trailers
 * anyway; this makes the refusal visible to the runner as a 403.)
 */
export async function* trailerCheckedBody(req: AsyncIterable<Buffer> & { rawTrailers: string[] }): AsyncGenerator<Buffer> {
  for await (const chunk of req) yield chunk;
  const forged = findImpersonationHeader(req.rawTrailers);
  if (forged !== undefined) throw new ImpersonationTrailerError(forged);
}
