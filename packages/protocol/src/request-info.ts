/**
 * What kube-apiserver's request-info resolver
 * (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`,
 * `RequestInfoFactory.NewRequestInfo`) derives from a request, computed from
 * the method and the request target alone. Authorizers (RBAC, the agent's
 * owner policy) decide on these fields, so they must read a path exactly as
 * the API server does; the resolver's quirks are kept on purpose and noted
 * where they surprise.
 */
export interface RequestInfo {
  /** `true` for `/api/VERSION/…` and `/apis/GROUP/VERSION/…` with at least a resource segment. */
  isResourceRequest: boolean;
  /** The percent-decoded path, without the query (Go's `URL.Path`). */
  path: string;
  /**
   * Resource requests: `get list watch create update patch delete
   * deletecollection proxy`, or `''` for a method the API server maps to no
   * verb (`OPTIONS`, `CONNECT`, …). Connect subresources keep the method's
   * verb as the API server does (`POST …/exec` → `create`, `GET …/exec` →
   * `get`); see {@link RequestInfo.connect}. Non-resource requests: the
   * lowercased method (`get`, `post`, `head`, …).
   */
  verb: string;
  /** `'api'`, `'apis'`, or `''` for a non-resource request. */
  apiPrefix: string;
  /** `''` for the core group. */
  apiGroup: string;
  apiVersion: string;
  /**
   * The namespace segment. Set for `/namespaces/NS/…` and for the Namespace
   * object itself (`/api/v1/namespaces/NS` → namespace `NS`, resource
   * `namespaces`, name `NS`); `''` for cluster-scoped resources and for
   * requests across all namespaces (`/api/v1/pods`).
   */
  namespace: string;
  resource: string;
  subresource: string;
  /** The object name from the path, or from a `fieldSelector=metadata.name=X` on a list or watch. */
  name: string;
  /** Path segments from the resource on: `[resource, name, subresource, …]`; `[]` for non-resource requests. */
  parts: string[];
  /**
   * Not in the API server's struct: `true` for the connect subresources
   * (`exec`, `attach`, `portforward`, `proxy`) and for the deprecated
   * `/proxy/` verb prefix, which reach a process, a port or a backend rather
   * than stored objects.
   */
  connect: boolean;
}

/** Path prefixes of resource requests; only `apis` carries a group segment. */
const API_PREFIXES = new Set(['api', 'apis']);
const GROUPLESS_API_PREFIXES = new Set(['api']);
/** Verbs given as a deprecated path prefix (`/api/v1/watch/…`, `/api/v1/proxy/…`). */
const SPECIAL_VERBS = new Set(['proxy', 'watch']);
/** Segments after `/namespaces/NS` that are subresources of the Namespace, not namespaced resources. */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
/** Subresources served by a Connecter (stream to a process, a port or a backend). */
const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward', 'proxy']);

const METHOD_VERBS: Readonly<Record<string, string>> = {
  POST: 'create',
  GET: 'get',
  HEAD: 'get',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/;
const PERCENT_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
const MALFORMED_PERCENT = /%(?![0-9A-Fa-f]{2})/;
const INT64 = /^[+-]?[0-9]+$/;
const INT64_MAX = 9_223_372_036_854_775_807n;
const utf8 = new TextDecoder('utf-8');

/**
 * Derives the {@link RequestInfo} of `method` on `target` (origin form,
 * `/api/v1/namespaces/ns/pods?watch=1`; absolute form is accepted too).
 * Never throws: a target Go's URL parser would reject (`%zz`) keeps its
 * malformed escapes literally, and the API server answers such a request 400
 * before any handler sees it.
 */
export function requestInfo(method: string, target: string): RequestInfo {
  const { rawPath, rawQuery } = splitTarget(target);
  const path = decodePercentRuns(rawPath);
  const info: RequestInfo = {
    isResourceRequest: false,
    path,
    verb: method.toLowerCase(),
    apiPrefix: '',
    apiGroup: '',
    apiVersion: '',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
    parts: [],
    connect: false,
  };

  // Like the resolver, split after trimming every leading and trailing '/',
  // and keep empty inner segments: `/api/v1/namespaces//pods` has an empty
  // namespace, i.e. reads as a request across all namespaces.
  let parts = splitPath(path);
  if (parts.length < 3) return info;
  const prefix = parts[0] as string;
  if (!API_PREFIXES.has(prefix)) return info;
  parts = parts.slice(1);
  let group = '';
  if (!GROUPLESS_API_PREFIXES.has(prefix)) {
    // `/apis/GROUP/VERSION` is group discovery: a resource needs a fourth segment.
    if (parts.length < 3) return info;
    group = parts[0] as string;
    parts = parts.slice(1);
  }
  info.isResourceRequest = true;
  info.apiPrefix = prefix;
  info.apiGroup = group;
  info.apiVersion = parts[0] as string;
  parts = parts.slice(1);

  const first = parts[0] as string;
  if (SPECIAL_VERBS.has(first)) {
    // `/api/v1/watch` alone: the resolver errors and the API server answers
    // 500; it stays a resource request with no resource.
    if (parts.length < 2) return info;
    info.verb = first;
    parts = parts.slice(1);
  } else {
    info.verb = METHOD_VERBS[method.toUpperCase()] ?? '';
  }

  if (parts[0] === 'namespaces') {
    if (parts.length > 1) {
      info.namespace = parts[1] as string;
      if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2] as string)) parts = parts.slice(2);
    }
  }
  info.parts = parts;

  // The deprecated `/proxy/` prefix takes no subresource: `/proxy/nodes/n/a/b`
  // is the proxied path `a/b` of node n.
  if (parts.length >= 3 && info.verb !== 'proxy') info.subresource = parts[2] as string;
  if (parts.length >= 2) info.name = parts[1] as string;
  if (parts.length >= 1) info.resource = parts[0] as string;
  info.connect = info.verb === 'proxy' || CONNECT_SUBRESOURCES.has(info.subresource);

  // A get without a name is a list, or a watch when the `watch` query is set.
  // A named get keeps `get` whatever its query says (the resolver only looks
  // at `watch` for collections), and a `/watch/` prefix keeps `watch` without
  // reading any query.
  if (info.name === '' && info.verb === 'get') {
    const query = parseQuery(rawQuery);
    info.verb = isTrue(query.get('watch')?.[0]) ? 'watch' : 'list';
    const name = listOptionsName(query);
    if (name !== undefined) info.name = name;
  }
  if (info.name === '' && info.verb === 'delete') info.verb = 'deletecollection';
  return info;
}

function splitTarget(target: string): { rawPath: string; rawQuery: string } {
  let t = target;
  const abs = ABSOLUTE_FORM.exec(t);
  if (abs !== null) {
    t = t.slice(abs[0].length);
    if (!t.startsWith('/')) t = `/${t}`;
  }
  const q = t.indexOf('?');
  return q === -1 ? { rawPath: t, rawQuery: '' } : { rawPath: t.slice(0, q), rawQuery: t.slice(q + 1) };
}

function splitPath(path: string): string[] {
  let start = 0;
  let end = path.length;
  while (start < end && path.charCodeAt(start) === 0x2f) start++;
  while (end > start && path.charCodeAt(end - 1) === 0x2f) end--;
  return start === end ? [] : path.slice(start, end).split('/');
}

/**
 * Decodes every run of well-formed `%XX` escapes as UTF-8 (invalid UTF-8
 * becomes U+FFFD) and leaves a malformed `%` as it is. `%2F` becomes `/`
 * before the path is split, as in Go's `URL.Path`.
 */
function decodePercentRuns(s: string): string {
  if (!s.includes('%')) return s;
  return s.replace(PERCENT_RUN, (run) => {
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16);
    return utf8.decode(bytes);
  });
}

/** Go's `url.ParseQuery`: pairs with a `;` or a malformed escape are dropped, `+` is a space. */
function parseQuery(raw: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (raw === '') return out;
  for (const pair of raw.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const key = queryUnescape(eq === -1 ? pair : pair.slice(0, eq));
    const value = queryUnescape(eq === -1 ? '' : pair.slice(eq + 1));
    if (key === undefined || value === undefined) continue;
    const values = out.get(key);
    if (values === undefined) out.set(key, [value]);
    else values.push(value);
  }
  return out;
}

function queryUnescape(s: string): string | undefined {
  if (MALFORMED_PERCENT.test(s)) return undefined;
  return decodePercentRuns(s.replaceAll('+', ' '));
}

/** apimachinery's query-to-bool conversion: only absent, `0` and `false` (any case) are false. */
function isTrue(v: string | undefined): boolean {
  return v !== undefined && v !== '0' && v.toLowerCase() !== 'false';
}

/**
 * The name a list or watch is narrowed to by `fieldSelector=metadata.name=X`.
 * The resolver decodes the whole ListOptions first and ignores the selector
 * when any parameter fails to decode; the numeric ones and the field selector
 * are checked here (a malformed `labelSelector` is not). The name must also
 * be a valid path segment name (not `.`/`..`, no `/` or `%`).
 */
function listOptionsName(query: Map<string, string[]>): string | undefined {
  for (const key of ['limit', 'timeoutSeconds']) {
    const v = query.get(key)?.[0];
    if (v !== undefined && !isInt64(v)) return undefined;
  }
  const selector = query.get('fieldSelector')?.[0];
  if (selector === undefined) return undefined;
  const name = exactFieldMatch(selector, 'metadata.name');
  if (name === undefined || name === '.' || name === '..' || name.includes('/') || name.includes('%')) return undefined;
  return name;
}

function isInt64(v: string): boolean {
  if (!INT64.test(v)) return false;
  const n = BigInt(v);
  return n <= INT64_MAX && n >= -INT64_MAX - 1n;
}

/**
 * Parses a field selector as apimachinery's `fields.ParseSelector` does
 * (terms split on unescaped `,`, then on the first `!=`, `==` or `=`;
 * values unescape `\\`, `\,`, `\=`) and returns the value `field` must equal,
 * from the first matching `=`/`==` term in sorted order. `undefined` when the
 * selector does not parse or has no such term.
 */
function exactFieldMatch(selector: string, field: string): string | undefined {
  const terms = splitTerms(selector).sort();
  let found: string | undefined;
  for (const term of terms) {
    if (term === '') continue;
    const op = /!=|==|=/.exec(term);
    if (op === null) return undefined;
    const value = unescapeFieldValue(term.slice(op.index + op[0].length));
    if (value === undefined) return undefined;
    if (found === undefined && op[0] !== '!=' && term.slice(0, op.index) === field) found = value;
  }
  return found;
}

function splitTerms(selector: string): string[] {
  if (selector === '') return [];
  const terms: string[] = [];
  let start = 0;
  let escaped = false;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (escaped) escaped = false;
    else if (c === '\\') escaped = true;
    else if (c === ',') {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(selector.slice(start));
  return terms;
}

function unescapeFieldValue(s: string): string | undefined {
  if (!/[\\,=]/.test(s)) return s;
  let out = '';
  let escaped = false;
  for (const c of s) {
    if (escaped) {
      if (c !== '\\' && c !== ',' && c !== '=') return undefined;
      out += c;
      escaped = false;
    } else if (c === '\\') escaped = true;
    else if (c === ',' || c === '=') return undefined;
    else out += c;
  }
  return escaped ? undefined : out;
}
