// The agent's header rules on top of the protocol's hop-by-hop rule
// (http-headers.ts in @pipeops/tunnel-protocol): what it never forwards to
// the API server, and what it checks of a request head.
import { forwardRequestHeaders, requestTargetProblem } from '@pipeops/tunnel-protocol';

/** Request headers the agent never forwards besides hop-by-hop ones: the agent sets Host, Authorization and Audit-ID itself; undici refuses Expect. */
const REQUEST_DROP = new Set(['host', 'authorization', 'expect', 'audit-id']);

/**
 * The headers to send upstream, from a request's `rawHeaders` (order and
 * repeats kept), without hop-by-hop, Host, Authorization, Expect, Audit-ID
 * and the gateway's `x-pipeops-*`; then the agent's credential headers, then
 * `added` (`[name, value, …]`: the identity and `Audit-ID` from admission).
 * When `added` sets an identity (`Impersonate-User`), the credential's own
 * `Impersonate-*` headers (a kubeconfig `as:`) give way to it. (A runner's
 * own `Impersonate-*` headers never get here: admission refuses them.)
 */
export function upstreamRequestHeaders(raw: readonly string[], auth: Record<string, string>, added: readonly string[] = []): string[] {
  const out = forwardRequestHeaders(raw, (lower) => REQUEST_DROP.has(lower) || lower.startsWith('x-pipeops-') || lower in auth);
  const actsAsRunner = added.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'impersonate-user');
  for (const [k, v] of Object.entries(auth)) {
    if (actsAsRunner && k.startsWith('impersonate-')) continue;
    out.push(k, v);
  }
  for (const v of added) out.push(v);
  return out;
}

const AUTHORITY = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::[0-9]{1,5})?$/;

/**
 * Why a request target or Host is refused, or `undefined` when acceptable:
 * only origin-form targets (`/path?query`, not `//…`), and at most one Host
 * header that is a plain `host[:port]` (no user info, path or second value).
 */
export function targetProblem(url: string | undefined, rawHeaders: readonly string[]): string | undefined {
  const problem = requestTargetProblem(url);
  if (problem !== undefined) return problem;
  let hosts = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'host') continue;
    hosts += 1;
    if (hosts > 1) return 'more than one Host header';
    if (!AUTHORITY.test(rawHeaders[i + 1] ?? '')) return 'malformed Host header';
  }
  return undefined;
}
