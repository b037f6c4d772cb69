import { TunnelError, type TunnelErrorOptions } from '@pipeops/tunnel-protocol';

/**
 * Every code `@pipeops/tunnel-client` raises, with its HTTP status where one
 * applies. The README's "Error codes" table lists each one (a test keeps
 * them in step).
 */
export const clientErrorCodes = {
  PT_ERR_CLIENT_CONFIG: { message: 'invalid tunnel-client option' },
  PT_ERR_AUTH_REJECTED: { status: 401, message: 'the gateway rejected the runner token' },
  PT_ERR_CLIENT_DIAL_FAILED: { status: 502, message: 'could not open the tunnel to the gateway' },
  PT_ERR_CLIENT_DISCONNECTED: { status: 503, message: 'the tunnel to the gateway is not connected' },
  PT_ERR_CLIENT_CLOSED: { message: 'the tunnel was closed' },
  PT_ERR_CLIENT_ORIGIN: { status: 400, message: 'the tunnel dispatcher only serves its own base URL' },
  PT_ERR_CLIENT_HTTP: { message: 'the API server answered with an error status' },
} as const satisfies Record<string, { status?: number; message: string }>;

/** A code of {@link clientErrorCodes}. */
export type ClientErrorCode = keyof typeof clientErrorCodes;

/**
 * The error tunnel-client raises: a {@link TunnelError} with a stable code from
 * {@link clientErrorCodes}, `status` where one applies, and `cause` preserved.
 * `PT_ERR_CLIENT_HTTP` also carries the response `body` (a Kubernetes
 * `Status` object when the API server or the gateway sent one).
 */
export class ClientError extends TunnelError {
  /** The response body, for `PT_ERR_CLIENT_HTTP`. */
  declare readonly body?: unknown;

  constructor(code: ClientErrorCode, message?: string, options: TunnelErrorOptions & { body?: unknown } = {}) {
    const { body, ...rest } = options;
    const status = rest.status ?? (clientErrorCodes[code] as { status?: number }).status;
    super(code, message ?? clientErrorCodes[code].message, status === undefined ? rest : { ...rest, status });
    this.name = 'ClientError';
    if (body !== undefined) this.body = body;
  }
}
