/**
 * Hop-by-hop headers (RFC 9110 §7.6.1 plus the legacy proxy ones): never
 * forwarded in either direction (an upgrade's `Connection`/`Upgrade` are
 * re-created by undici upstream and copied verbatim on the 101 back).
 */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'transfer-encoding', 'upgrade']);

/** Request headers the agent never forwards besides hop-by-hop ones: the agent sets Host, Authorization and Audit-ID itself; undici refuses Expect. */
const REQUEST_DROP = new Set(['host', 'authorization', 'expect', 'trailer', 'audit-id']);

/** Names listed in `Connection` (hop-by-hop by declaration), lower-cased. */
function connectionTokens(raw: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() !== 'connection') continue;
    for (const t of (raw[i + 1] ?? '').split(',')) {
      const name = t.trim().toLowerCase();
      if (name !== '') out.add(name);
    }
  }
  return out;
}

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
  const drop = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || REQUEST_DROP.has(lower) || drop.has(lower) || lower.startsWith('x-pipeops-')) continue;
    if (lower in auth) continue;
    out.push(name, raw[i + 1] ?? '');
  }
  const actsAsRunner = added.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'impersonate-user');
  for (const [k, v] of Object.entries(auth)) {
    if (actsAsRunner && k.startsWith('impersonate-')) continue;
    out.push(k, v);
  }
  for (const v of added) out.push(v);
  return out;
}

/**
 * A response head or trailer block as undici hands it over: over HTTP/1.1 the
 * raw `[name, value, …]` list (order and repeats kept); over HTTP/2 Node's
 * header object (lower-case names, repeats already joined, `set-cookie` an array).
 */
export type UpstreamHeaders = readonly (Buffer | string)[] | Readonly<Record<string, string | readonly string[] | undefined>>;

/** `[name, value, …]` strings of either form; HTTP/2 pseudo-headers (`:status`) are not headers and are left out. */
export function headerList(raw: UpstreamHeaders | null | undefined): string[] {
  if (raw === null || raw === undefined) return [];
  const out: string[] = [];
  if (Array.isArray(raw)) {
    for (let i = 0; i + 1 < raw.length; i += 2) out.push(latin1(raw[i]), latin1(raw[i + 1]));
    return out;
  }
  for (const [name, value] of Object.entries(raw as Readonly<Record<string, string | readonly string[] | undefined>>)) {
    if (name.startsWith(':') || value === undefined) continue;
    if (typeof value === 'string') out.push(name, value);
    else for (const v of value) out.push(name, v);
  }
  return out;
}

function latin1(b: Buffer | string | undefined): string {
  if (b === undefined) return '';
  return typeof b === 'string' ? b : b.toString('latin1');
}

/** Response headers to relay, from undici's headers of either protocol (order and repeats kept), minus hop-by-hop. */
export function downstreamResponseHeaders(raw: UpstreamHeaders, keepUpgrade = false): string[] {
  const strs = headerList(raw);
  const drop = keepUpgrade ? new Set<string>() : connectionTokens(strs);
  const out: string[] = [];
  for (let i = 0; i + 1 < strs.length; i += 2) {
    const name = strs[i] ?? '';
    const lower = name.toLowerCase();
    if (keepUpgrade ? lower === 'keep-alive' || lower === 'transfer-encoding' : HOP_BY_HOP.has(lower) || drop.has(lower)) continue;
    out.push(name, strs[i + 1] ?? '');
  }
  return out;
}

/** Pairs `[name, value]` of trailers of either protocol. */
export function trailerPairs(raw: UpstreamHeaders | null | undefined): Array<[string, string]> {
  const strs = headerList(raw);
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < strs.length; i += 2) out.push([strs[i] ?? '', strs[i + 1] ?? '']);
  return out;
}

const AUTHORITY = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::[0-9]{1,5})?$/;

/**
 * Why a request target or Host is refused, or `undefined` when acceptable:
 * only origin-form targets (`/path?query`, not `//…`), and at most one Host
 * header that is a plain `host[:port]` (no user info, path or second value).
 */
export function targetProblem(url: string | undefined, rawHeaders: readonly string[]): string | undefined {
  if (url === undefined || url === '') return 'empty request target';
  if (url === '*') return 'asterisk-form request target is not allowed';
  if (!url.startsWith('/')) return 'only origin-form request targets (/path) are allowed';
  if (url.startsWith('//')) return 'request target must not start with //';
  let hosts = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'host') continue;
    hosts += 1;
    if (hosts > 1) return 'more than one Host header';
    if (!AUTHORITY.test(rawHeaders[i + 1] ?? '')) return 'malformed Host header';
  }
  return undefined;
}
