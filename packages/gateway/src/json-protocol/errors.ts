import { TunnelError, type TunnelErrorOptions } from '@pipeops/tunnel-protocol';

/**
 * Codes of the JSON message protocol (`GET /ws/k8s`). Each is sent to the
 * runner as `{"id", "error": {"code", "message"}}` for the request it concerns
 * (`id` null when the message had no usable id); none of them closes the
 * socket. The gateway README's "JSON protocol" table lists each one (a test
 * keeps them in step).
 */
export const jsonProtocolErrorCodes = {
  PT_ERR_JSON_MALFORMED: { message: 'message is not valid JSON' },
  PT_ERR_JSON_INVALID_REQUEST: { message: 'invalid request message' },
  PT_ERR_JSON_BINARY_FRAME: { message: 'binary WebSocket frames are not accepted; send JSON text frames' },
  PT_ERR_JSON_DUPLICATE_ID: { message: 'a request with this id is already in flight' },
  PT_ERR_JSON_UNKNOWN_ID: { message: 'no request with this id is in flight' },
  PT_ERR_JSON_TOO_MANY_REQUESTS: { message: 'too many concurrent requests on this socket' },
  PT_ERR_JSON_RESPONSE_TOO_LARGE: { message: 'response body (or one stream chunk) exceeds the size limit' },
  PT_ERR_JSON_UPSTREAM_FAILED: { message: 'the stream to the agent failed' },
  PT_ERR_JSON_UPSTREAM_MALFORMED: { message: 'a WATCH event from the API server is not valid JSON' },
  PT_ERR_JSON_TOO_DEEP: { message: 'a JSON value is nested too deeply for the gateway to encode' },
} as const satisfies Record<string, { status?: number; message: string }>;

/** A code from {@link jsonProtocolErrorCodes}. */
export type JsonProtocolErrorCode = keyof typeof jsonProtocolErrorCodes;

/** A {@link TunnelError} with a JSON-protocol code; the message defaults from {@link jsonProtocolErrorCodes}. */
export function jsonProtocolError(code: JsonProtocolErrorCode, message?: string, options: TunnelErrorOptions = {}): TunnelError {
  return new TunnelError(code, message ?? jsonProtocolErrorCodes[code].message, options);
}
