import { TunnelError, type TunnelErrorOptions } from '@pipeops/tunnel-protocol';

/**
 * Codes the gateway defines on top of the protocol registry
 * (`@pipeops/tunnel-protocol` `errorCodes`, whose codes it also uses).
 * The README's "Error codes" table lists each one; a test keeps them in step.
 */
export const gatewayErrorCodes = {
  PT_ERR_GATEWAY_CONFIG: { message: 'invalid gateway options' },
  PT_ERR_TOKENS_INVALID: { message: 'invalid tokens file' },
  PT_ERR_GATEWAY_CLOSED: { status: 503, message: 'gateway closed' },
  PT_ERR_INTERNAL: { status: 500, message: 'internal error' },
  PT_ERR_METRICS: { status: 500, message: 'metrics collection failed' },
  PT_ERR_RUNNER_LIMITED: { status: 429, message: "over the runner's stream or request-rate limit" },
  PT_ERR_FLEET_UNAVAILABLE: { status: 503, message: 'the fleet registry (Redis) cannot be reached' },
  PT_ERR_REPLICA_UNREACHABLE: { status: 503, message: 'the replica holding the tunnel cannot be reached' },
  PT_ERR_REPLICA_LINK: { status: 502, message: 'replica link protocol error' },
} as const satisfies Record<string, { status?: number; message: string }>;

/** A code from {@link gatewayErrorCodes}. */
export type GatewayErrorCode = keyof typeof gatewayErrorCodes;

/** A {@link TunnelError} with a gateway code; status and message default from {@link gatewayErrorCodes}. */
export function gatewayError(code: GatewayErrorCode, message?: string, options: TunnelErrorOptions = {}): TunnelError {
  const entry: { status?: number; message: string } = gatewayErrorCodes[code];
  const opts: TunnelErrorOptions = { ...options };
  if (opts.status === undefined && entry.status !== undefined) opts.status = entry.status;
  return new TunnelError(code, message ?? entry.message, opts);
}
