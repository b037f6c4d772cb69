/**
 * The protocol's error registry: every `PT_ERR_*` code the tunnel's shared
 * layer defines, with its HTTP status where one applies and a default message.
 * The README's "Error codes" table lists each one (a test keeps them in step).
 */
export const errorCodes = {
  PT_ERR_AUTH_REJECTED: { status: 401, message: 'credentials rejected' },
  PT_ERR_FORBIDDEN: { status: 403, message: 'not allowed' },
  PT_ERR_NOT_FOUND: { status: 404, message: 'no such endpoint' },
  PT_ERR_BAD_REQUEST: { status: 400, message: 'bad request' },
  PT_ERR_CLUSTER_NOT_CONNECTED: { status: 503, message: 'cluster not connected' },
  PT_ERR_AGENT_TIMEOUT: { status: 504, message: 'agent timed out' },
  PT_ERR_DRAINING: { status: 503, message: 'gateway is draining' },
  PT_ERR_SESSION_REPLACED: { message: 'session replaced by a newer one for the same cluster' },
  PT_ERR_CLUSTER_HELD: { status: 409, message: 'a newer session holds the cluster; the replaced agent stands by' },
  PT_ERR_RECONNECT_EXHAUSTED: { message: 'reconnect attempts exhausted' },
  PT_ERR_HANDSHAKE: { message: 'tunnel handshake failed' },
  PT_ERR_HANDSHAKE_TIMEOUT: { message: 'tunnel handshake timed out' },
  PT_ERR_PROTOCOL_VERSION: { message: 'the peer speaks a protocol version this side does not' },
  PT_ERR_CONFIG: { message: 'invalid configuration' },
  PT_ERR_PREAMBLE_TOO_LARGE: { status: 400, message: 'stream preamble too large' },
  PT_ERR_PREAMBLE_INVALID: { status: 400, message: 'stream preamble invalid' },
  PT_ERR_PREAMBLE_UNKNOWN_KIND: { status: 400, message: 'stream preamble kind unknown' },
  PT_ERR_HTTP_HEAD: { message: 'HTTP head cut short or too large' },
  PT_ERR_RUNNER_GONE: { message: 'the runner went away' },
  PT_ERR_HTTP_BODY_INVALID: { status: 400, message: 'request body malformed or cut short' },
  PT_ERR_CONTROL_INVALID: { message: 'control message invalid' },
  PT_ERR_CONTROL_LINE_TOO_LARGE: { message: 'control message line too large' },
  PT_ERR_CONTROL_CLOSED: { message: 'control channel closed' },
  PT_ERR_WS_TEXT_FRAME: { message: 'text WebSocket frame on a binary tunnel' },
  PT_ERR_WS_CLOSED: { message: 'WebSocket closed' },
  PT_ERR_WS_PROTOCOL: { message: 'WebSocket protocol violation' },
} as const satisfies Record<string, { status?: number; message: string }>;

/** A code from the protocol registry. */
export type TunnelErrorCode = keyof typeof errorCodes;

/** Options of {@link TunnelError}. */
export interface TunnelErrorOptions {
  /** The underlying error, kept as `cause`. */
  cause?: unknown;
  /** HTTP status; defaults to the registry's status for the code. */
  status?: number;
}

/**
 * The protocol's error class: a stable `code` (`PT_ERR_*`), an HTTP `status`
 * where one applies, and `cause` preserved. Other packages may use codes
 * outside the registry with the same shape.
 */
export class TunnelError extends Error {
  /** Stable code, e.g. `PT_ERR_AUTH_REJECTED`. */
  readonly code: string;
  /** HTTP status where one applies. */
  declare readonly status?: number;

  constructor(code: TunnelErrorCode | (string & {}), message?: string, options: TunnelErrorOptions = {}) {
    const entry = (errorCodes as Record<string, { status?: number; message: string }>)[code];
    super(message ?? entry?.message ?? code, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TunnelError';
    this.code = code;
    const status = options.status ?? entry?.status;
    if (status !== undefined) this.status = status;
  }
}

/** True when `err` is a {@link TunnelError} (optionally with the given code). */
export function isTunnelError(err: unknown, code?: string): err is TunnelError {
  return err instanceof TunnelError && (code === undefined || err.code === code);
}

/** The runner closed its connection or stream before the answer; nothing can be written back (recorded as 499). */
export class RunnerGoneError extends TunnelError {
  constructor(message?: string) {
    super('PT_ERR_RUNNER_GONE', message);
    this.name = 'RunnerGoneError';
  }
}
