// The request id of a runner request: the runner's own when it is a sane
// token (correlation across systems), else a fresh UUID. It travels to the
// agent (and on as the API server's Audit-ID), comes back on the response,
// and names the audit records of both sides.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** Header carrying the request id on the forwarded request and on the runner's response. */
export const REQUEST_ID_HEADER = 'x-pipeops-request-id';

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The runner's own `x-pipeops-request-id` when it is a sane token, else a fresh UUID. */
export function requestIdFor(req: IncomingMessage): string {
  return requestIdFrom(req.headers[REQUEST_ID_HEADER]);
}

/** `given` when it is a sane request id token, else a fresh UUID. */
export function requestIdFrom(given: string | string[] | undefined): string {
  return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
}
