import { requestInfo, type RequestInfo } from '@pipeops/tunnel-protocol';

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
 * The `verb` label of a request (a fixed set): kube-apiserver's verb from
 * the request info (list vs get vs watch, deletecollection), with `connect`
 * for exec/attach/port-forward and any upgrade, and the method's name for
 * HEAD, OPTIONS and non-resource writes (`create` for a POST).
 */
export function kubeVerb(method: string, target: string, upgrade: boolean, info: RequestInfo = requestInfo(method, target)): KubeVerb {
  if (upgrade || SUBRESOURCE_CONNECT.has(info.subresource)) return 'connect';
  switch (method.toUpperCase()) {
    case 'GET':
      return info.verb === 'watch' || info.verb === 'list' ? info.verb : 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return info.verb === 'deletecollection' ? 'deletecollection' : 'delete';
    case 'HEAD':
      return 'head';
    case 'OPTIONS':
      return 'options';
    default:
      return 'other';
  }
}
