// The one rule for runner-sent impersonation (issue 9): the API server treats
// every `Impersonate-*` header (User, Group, Uid, Extra-<key>, and any later
// addition) as a request to act as someone else. A runner never chooses its
// identity at the API server; the cluster owner does, with the agent's
// `kubernetes.access_as`. The gateway (early, so the request never leaves
// it) and the agent (the trust boundary: it also sees trailers) both apply
// this check.

/** True when `name` (any case) is an impersonation header (`Impersonate-…`). */
export function isImpersonationHeader(name: string): boolean {
  return name.length > 12 && name.slice(0, 12).toLowerCase() === 'impersonate-';
}

/**
 * The first impersonation header among `[name, value, name, value, …]` pairs
 * (Node's `rawHeaders` / `rawTrailers` shape), as it was spelt, or undefined.
 * A `Trailer` header that announces one counts too: the request would carry
 * it after the body.
 */
export function findImpersonationHeader(raw: readonly string[]): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    if (isImpersonationHeader(name)) return name;
    if (name.length === 7 && name.toLowerCase() === 'trailer') {
      for (const t of (raw[i + 1] ?? '').split(',')) {
        const announced = t.trim();
        if (isImpersonationHeader(announced)) return announced;
      }
    }
  }
  return undefined;
}

/** The refusal message (the body of a 403 `Status`, reason Forbidden) for a runner-sent impersonation header. */
export function impersonationRefusal(header: string): string {
  return `runners may not send impersonation headers (${header}): the identity used at the API server is set by the cluster owner (the agent's kubernetes.access_as)`;
}
