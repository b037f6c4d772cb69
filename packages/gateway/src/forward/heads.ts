// Request heads as the gateway takes them: which targets it relays, and,
// where it splices a runner's stream to the agent's, the request head
// without the runner's credentials and the response head with the request id.
import { requestTargetProblem, type RequestHead } from '@pipeops/tunnel-protocol';

/** Largest request head the gateway reads from a runner stream (bytes); beyond it → 400 Status. */
export const MAX_REQUEST_HEAD_BYTES = 32 * 1024;
/** Largest response head read from an agent stream (bytes); beyond it → 502 Status. */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

/**
 * Checks that a runner's request target is origin-form and the method is not
 * CONNECT: the gateway only ever relays paths relative to the cluster's API
 * server. Returns the refusal message, or undefined when fine.
 */
export function targetProblem(method: string | undefined, target: string): string | undefined {
  if (method === 'CONNECT') return 'CONNECT is not supported by the gateway';
  return requestTargetProblem(target);
}

/** The request head for the agent: the runner's, minus `Authorization` and any request id, plus ours. */
export function forwardedHead(r: RequestHead, requestIdHeader: string, requestId: string): Buffer {
  let out = `${r.requestLine}\r\n`;
  const h = r.headers;
  for (let i = 0; i + 1 < h.length; i += 2) {
    const name = h[i]!;
    const lower = name.toLowerCase();
    if (lower === 'authorization' || lower === requestIdHeader) continue;
    out += `${name}: ${h[i + 1]!}\r\n`;
  }
  return Buffer.from(`${out}${requestIdHeader}: ${requestId}\r\n\r\n`, 'latin1');
}

/** The response head for the runner: the agent's, with the request id added after the status line. */
export function runnerResponseHead(head: string, requestIdHeader: string, requestId: string): Buffer {
  const eol = head.indexOf('\r\n');
  const first = eol === -1 ? head : head.slice(0, eol);
  const rest = eol === -1 ? '' : head.slice(eol);
  return Buffer.from(`${first}\r\n${requestIdHeader}: ${requestId}${rest}\r\n\r\n`, 'latin1');
}
