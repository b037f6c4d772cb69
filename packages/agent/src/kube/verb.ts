/** Values of the `verb` label of the Kubernetes request metrics (a fixed set). */
export const kubeVerbs = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'head', 'options', 'connect', 'other'] as const;
export type KubeVerb = (typeof kubeVerbs)[number];

/** Values of the `code` label: the status class, or `aborted` when no status was sent. */
export const kubeCodes = ['1xx', '2xx', '3xx', '4xx', '5xx', 'aborted'] as const;
export type KubeCode = (typeof kubeCodes)[number];

/** Maps a status to its {@link KubeCode}; `undefined` → `aborted`. */
export function codeClass(status: number | undefined): KubeCode {
  if (status === undefined || status < 100 || status > 599) return 'aborted';
  return `${String(Math.floor(status / 100))}xx` as KubeCode;
}

const SUBRESOURCE_CONNECT = new Set(['exec', 'attach', 'portforward']);

/**
 * The Kubernetes verb of a request, from its method, `watch` query and path
 * shape (`/api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]]`,
 * `/apis/GROUP/VERSION/…`). Non-resource paths (`/version`, `/readyz`) are `get`.
 */
export function kubeVerb(method: string, target: string, upgrade: boolean): KubeVerb {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
  const segs = path.split('/').filter((s) => s !== '');
  let rest: string[] | undefined;
  if (segs[0] === 'api' && segs.length >= 2) rest = segs.slice(2);
  else if (segs[0] === 'apis' && segs.length >= 3) rest = segs.slice(3);
  let legacyWatch = false;
  if (rest?.[0] === 'watch') {
    legacyWatch = true;
    rest = rest.slice(1);
  }
  if (rest !== undefined && rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const hasName = rest !== undefined && rest.length >= 2;
  const sub = rest?.[2];
  const collection = rest !== undefined && rest.length === 1;
  const m = method.toUpperCase();
  if (upgrade || (sub !== undefined && SUBRESOURCE_CONNECT.has(sub))) return 'connect';
  switch (m) {
    case 'GET': {
      const w = query.get('watch');
      if (legacyWatch || w === 'true' || w === '1') return 'watch';
      if (rest === undefined || rest.length === 0) return 'get';
      return collection ? 'list' : 'get';
    }
    case 'POST': return 'create';
    case 'PUT': return 'update';
    case 'PATCH': return 'patch';
    case 'DELETE': return collection && !hasName ? 'deletecollection' : 'delete';
    case 'HEAD': return 'head';
    case 'OPTIONS': return 'options';
    default: return 'other';
  }
}
