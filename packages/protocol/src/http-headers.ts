// The hop-by-hop rule, one for every relay of the tunnel: the gateway's
// routes, the agent's replay to the API server, tunnel-client's requests
// and local proxy (RFC 9110 §7.6.1).
//
// `Trailer` is not hop-by-hop (RFC 9110 §6.6.2: it announces end-to-end
// trailer fields). A relay drops it where it drops the trailers themselves:
// always on requests (no relay of the tunnel forwards request trailers), and
// on a response only when it does not relay that response's trailers. The
// older rule (RFC 2616 §13.5.1) listed it, and a response relayed with its
// trailers then lost the field that announces them.

/**
 * Hop-by-hop header names, lower case: the connection-specific fields of
 * RFC 9110 §7.6.1 (`connection`, `proxy-connection`, `keep-alive`, `te`,
 * `transfer-encoding`, `upgrade`) and the per-hop proxy credentials
 * (`proxy-authenticate`, `proxy-authorization`). Every `proxy-*` header and
 * every name listed in a `Connection` header is treated the same way (see
 * {@link isHopByHop}, {@link connectionTokens}). `trailer` is not in the set.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'transfer-encoding',
  'upgrade',
]);

/** True for a hop-by-hop header name (lower case): one of {@link HOP_BY_HOP_HEADERS} or any `proxy-*`. */
export function isHopByHop(lower: string): boolean {
  return HOP_BY_HOP_HEADERS.has(lower) || lower.startsWith('proxy-');
}

/** The names listed in the `Connection` headers of a flat `[name, value, …]` list (hop-by-hop by declaration), lower case. */
export function connectionTokens(raw: readonly string[]): ReadonlySet<string> {
  let out: Set<string> | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() !== 'connection') continue;
    for (const t of (raw[i + 1] ?? '').split(',')) {
      const name = t.trim().toLowerCase();
      if (name !== '') (out ??= new Set()).add(name);
    }
  }
  // Most heads have no Connection header: one shared empty set for them.
  return out ?? NO_TOKENS;
}

const NO_TOKENS: ReadonlySet<string> = new Set();

/**
 * A request's headers (flat `[name, value, …]`, order and repeats kept) for
 * the next hop: without hop-by-hop headers, names listed in `Connection`,
 * `Trailer`, and whatever `drop` refuses (given the lower-case name).
 */
export function forwardRequestHeaders(raw: readonly string[], drop: (lower: string) => boolean = () => false): string[] {
  const listed = connectionTokens(raw);
  return withoutHeaders(raw, (lower) => isHopByHop(lower) || lower === 'trailer' || listed.has(lower) || drop(lower));
}

/** How a response is relayed, for {@link relayResponseHeaders}. */
export interface ResponseRelay {
  /** A `101`: `Connection` and `Upgrade` go on to the client as they are. Default false. */
  switching?: boolean;
  /** The relay forwards this response's trailers, so its `Trailer` header stays. Default false. */
  trailers?: boolean;
}

/**
 * A response's headers (flat `[name, value, …]`, order and repeats kept) for
 * the next hop: without hop-by-hop headers and names listed in `Connection`;
 * `Trailer` only when the trailers are relayed; on a `101`, `Connection` and
 * `Upgrade` kept.
 */
export function relayResponseHeaders(raw: readonly string[], o: ResponseRelay = {}): string[] {
  const listed = connectionTokens(raw);
  return withoutHeaders(raw, (lower) => {
    if (o.switching === true && (lower === 'connection' || lower === 'upgrade')) return false;
    return isHopByHop(lower) || listed.has(lower) || (lower === 'trailer' && o.trailers !== true);
  });
}

/** A flat `[name, value, …]` list without the headers `drop` refuses (given the lower-case name), order and repeats kept. */
export function withoutHeaders(raw: readonly string[], drop: (lower: string) => boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    if (!drop(name.toLowerCase())) out.push(name, raw[i + 1] ?? '');
  }
  return out;
}

/** The value of the first header `lower` (a lower-case name) in a flat `[name, value, …]` list, or undefined. */
export function firstHeader(raw: readonly string[], lower: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]?.toLowerCase() === lower) return raw[i + 1];
  return undefined;
}

/** `{ name: value }` of a flat `[name, value, …]` list: a name keeps its first spelling, repeats become arrays in order. */
export function headerRecord(raw: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const names = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const value = raw[i + 1] ?? '';
    const lower = name.toLowerCase();
    const key = names.get(lower);
    if (key === undefined) {
      names.set(lower, name);
      out[name] = value;
      continue;
    }
    const prev = out[key] as string | string[];
    out[key] = Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

/**
 * Headers of either form HTTP libraries hand over — a raw `[name, value, …]`
 * list (strings or latin1 Buffers: Node's `rawHeaders`, undici over
 * HTTP/1.1) or a header object (undici over HTTP/2, a runner's request
 * options: repeats as arrays) — as a flat string list, order and repeats
 * kept. HTTP/2 pseudo-headers (`:status`) are not headers and are left out.
 */
export type AnyHeaders = readonly (Buffer | string)[] | Readonly<Record<string, string | readonly string[] | undefined>>;

/** See {@link AnyHeaders}. */
export function headerList(raw: AnyHeaders | null | undefined): string[] {
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

/** `[name, value]` pairs of headers of either form (see {@link AnyHeaders}): what `addTrailers` and `setHeaders` take. */
export function headerPairs(raw: AnyHeaders | null | undefined): Array<[string, string]> {
  const flat = headerList(raw);
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] ?? '', flat[i + 1] ?? '']);
  return out;
}

function latin1(b: Buffer | string | undefined): string {
  if (b === undefined) return '';
  return typeof b === 'string' ? b : b.toString('latin1');
}
