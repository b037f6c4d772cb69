// The Kubernetes `Status` object, the one shape of every error the tunnel
// answers itself (gateway, agent, the runner's local proxy, the JSON
// protocol): what kube-apiserver answers, so kubectl, client-go and
// client-node print ours like any API error.
import type { ServerResponse } from 'node:http';
import { TunnelError } from './errors.ts';
import { closingResponse } from './http-head.ts';

/** `metav1.StatusReason`s the tunnel answers with, by HTTP status. */
const REASONS: Readonly<Record<number, string>> = Object.freeze({
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  408: 'Timeout',
  429: 'TooManyRequests',
  500: 'InternalError',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
  504: 'Timeout',
});

/** The reason for `code` (`BadRequest` for an unlisted 4xx, `InternalError` for an unlisted 5xx). */
export function statusReason(code: number): string {
  return REASONS[code] ?? (code >= 500 ? 'InternalError' : 'BadRequest');
}

/** A `Status` failure object (kind Status, apiVersion v1). */
export interface KubeStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  code: number;
}

/** The `Status` object for `code`, with `message` and (default: {@link statusReason}) `reason`. */
export function kubeStatus(code: number, message: string, reason: string = statusReason(code)): KubeStatus {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** {@link kubeStatus} serialised, field order as the API server writes it. */
export function kubeStatusJson(code: number, message: string, reason?: string): string {
  return JSON.stringify(kubeStatus(code, message, reason));
}

/** Headers every `Status` answer carries besides its type and length: never cached; a 401 names the scheme (RFC 9110 §11.6.1). */
function statusHeaders(code: number): Record<string, string> {
  return { 'cache-control': 'no-store', ...(code === 401 ? { 'www-authenticate': 'Bearer realm="pipeops-tunnel"' } : {}) };
}

/**
 * Answers `code` with a `Status` body on a response whose head was not sent
 * (one that has started is destroyed: the only honest signal left), with
 * `headers` added.
 */
export function sendKubeStatus(res: ServerResponse, code: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = kubeStatusJson(code, message);
  res.writeHead(code, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...statusHeaders(code) });
  res.end(body);
}

/** A complete close-delimited `Status` answer for a raw connection (a refused upgrade, CONNECT, a parse error), with `headers` added. */
export function kubeStatusResponse(code: number, message: string, headers: Record<string, string> = {}): Buffer {
  return closingResponse(code, 'application/json', kubeStatusJson(code, message), Object.entries({ ...statusHeaders(code), ...headers }).flat());
}

/** Error thrown when a response head does not arrive within its deadline (504). */
export class HeadTimeoutError extends TunnelError {
  constructor(ms: number) {
    super('PT_ERR_AGENT_TIMEOUT', `the agent did not answer within ${ms} ms`);
    this.name = 'HeadTimeoutError';
  }
}

/**
 * The one error → `Status` mapping of every relay, for an error before the
 * response head: the error's own `status` (4xx/5xx, e.g. 503 from the opener
 * when no agent is connected, 429 for a runner over its limits) with its
 * message, 504 for a head timeout or a stream the agent did not accept in
 * time, else 502 "the tunnel stream failed". A 503 is a gap (an agent
 * reconnecting, a replica taking over): it carries `Retry-After: 1`.
 */
export function relayErrorStatus(err: Error): { status: number; reason: string; message: string; headers: Record<string, string> } {
  const code = (err as { code?: unknown }).code;
  const given = (err as { status?: unknown }).status;
  let status = typeof given === 'number' && given >= 400 && given <= 599 ? given : 502;
  let message = err instanceof HeadTimeoutError || typeof given === 'number' ? err.message : `the tunnel stream failed: ${err.message}`;
  if (code === 'PT_ERR_MUX_OPEN_TIMEOUT') {
    status = 504;
    message = 'the agent did not accept the stream in time';
  }
  return { status, reason: statusReason(status), message, headers: status === 503 ? { 'retry-after': '1' } : {} };
}
