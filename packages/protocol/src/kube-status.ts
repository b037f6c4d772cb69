// The Kubernetes `Status` object, the one shape of every error the tunnel
// answers itself (gateway, agent, the runner's local proxy, the JSON
// protocol): what kube-apiserver answers, so kubectl, client-go and
// client-node print ours like any API error.

/** `metav1.StatusReason`s the tunnel answers with, by HTTP status. */
const REASONS: Readonly<Record<number, string>> = Object.freeze({
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed',
  408: 'Timeout', 429: 'TooManyRequests', 500: 'InternalError', 502: 'BadGateway', 503: 'ServiceUnavailable', 504: 'Timeout',
});

/** The reason for `code` (`BadRequest` for an unlisted 4xx, `InternalError` for an unlisted 5xx). */
export function statusReason(code: number): string {
  return REASONS[code] ?? (code >= 500 ? 'InternalError' : 'BadRequest');
}

/** A `Status` failure object (kind Status, apiVersion v1). */
export interface KubeStatus {
  kind: 'Status'; apiVersion: 'v1'; metadata: Record<string, never>; status: 'Failure'; message: string; reason: string; code: number;
}

/** The `Status` object for `code`, with `message` and (default: {@link statusReason}) `reason`. */
export function kubeStatus(code: number, message: string, reason: string = statusReason(code)): KubeStatus {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** {@link kubeStatus} serialised, field order as the API server writes it. */
export function kubeStatusJson(code: number, message: string, reason?: string): string {
  return JSON.stringify(kubeStatus(code, message, reason));
}
