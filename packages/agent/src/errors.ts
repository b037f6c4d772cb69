import { TunnelError } from '@pipeops/tunnel-protocol';

/**
 * Error codes the agent raises. Every code is listed in this package's
 * README ("Error codes"); a test keeps the two in step. Codes shared with the
 * protocol registry keep the protocol's meaning.
 */
export const agentErrorCodes = {
  PT_ERR_CONFIG: { message: 'invalid agent configuration' },
  PT_ERR_AUTH_REJECTED: { status: 401, message: 'the gateway rejected the agent credentials' },
  PT_ERR_RECONNECT_EXHAUSTED: { message: 'reconnect attempts exhausted (or reconnect disabled)' },
  PT_ERR_DIAL_FAILED: { message: 'could not open the tunnel WebSocket' },
  PT_ERR_HANDSHAKE_TIMEOUT: { message: 'the gateway did not answer hello with welcome in time' },
  PT_ERR_HANDSHAKE: { message: 'the gateway refused the hello' },
  PT_ERR_PROTOCOL_VERSION: { message: 'the gateway speaks a protocol version this agent does not' },
  PT_ERR_AGENT_CLOSED: { message: 'the agent is closed' },
  PT_ERR_KUBE_CREDENTIALS: { status: 503, message: 'the Kubernetes credentials cannot be loaded or used' },
} as const satisfies Record<string, { status?: number; message: string }>;

export type AgentErrorCode = keyof typeof agentErrorCodes;

/**
 * The agent's error: a protocol {@link TunnelError} (so `instanceof
 * TunnelError` holds) with a stable `code`, an HTTP `status` where one
 * applies, and `cause` preserved.
 */
export class AgentError extends TunnelError {
  declare readonly code: AgentErrorCode;

  constructor(code: AgentErrorCode, message?: string, options?: { cause?: unknown; status?: number }) {
    const entry: { status?: number; message: string } = agentErrorCodes[code];
    const opts: { cause?: unknown; status?: number } = {};
    if (options?.cause !== undefined) opts.cause = options.cause;
    const status = options?.status ?? entry.status;
    if (status !== undefined) opts.status = status;
    super(code, message ?? entry.message, opts);
    this.name = 'AgentError';
  }
}
