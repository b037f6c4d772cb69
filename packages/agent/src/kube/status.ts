import type { Duplex } from 'node:stream';
import { DENIED_BY_HEADER, kubeStatusResponse, type AuditDenyRule } from '@pipeops/tunnel-protocol';

/** The header telling the gateway the agent refused a request itself, and by which rule (see DENIED_BY_HEADER). */
function deniedBy(rule: AuditDenyRule | undefined): Record<string, string> {
  return rule === undefined ? {} : { [DENIED_BY_HEADER]: rule };
}

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Writes a complete `Status` answer on a stream whose response has not
 * started (a refusal, a parse error, a failed upstream request) and ends it;
 * `rule` when the agent refused the request. The answer to a HEAD request
 * has no body.
 */
export function sendRawStatus(socket: Duplex, code: number, message: string, rule?: AuditDenyRule, method?: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  const answer = kubeStatusResponse(code, message, deniedBy(rule));
  socket.end(method === 'HEAD' ? answer.subarray(0, answer.indexOf(HEAD_END) + HEAD_END.length) : answer);
}
