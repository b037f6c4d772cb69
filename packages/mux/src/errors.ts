import { Duplex } from 'node:stream';
/**
 * Error registry for `@pipeops/tunnel-mux`. Every code is stable and listed in
 * the package README's "Error codes" table (a test keeps the two in sync).
 */
export const muxErrorCodes = {
  PT_ERR_MUX_CONFIG: 'invalid session option',
  PT_ERR_MUX_SESSION_CLOSED: 'session closed',
  PT_ERR_MUX_STREAM_RESET: 'stream reset by peer',
  PT_ERR_MUX_PROTOCOL: 'yamux protocol error',
  PT_ERR_MUX_KEEPALIVE_TIMEOUT: 'keepalive ping not answered in time',
  PT_ERR_MUX_GOAWAY: 'remote side sent GoAway; no new streams',
  PT_ERR_MUX_OPEN_TIMEOUT: 'stream SYN not acknowledged in time',
  PT_ERR_MUX_CLOSE_TIMEOUT: 'remote did not close its half of the stream in time',
  PT_ERR_MUX_STREAMS_EXHAUSTED: 'too many streams or stream ids exhausted',
  PT_ERR_MUX_TRANSPORT_CLOSED: 'underlying transport ended, errored or closed',
  PT_ERR_MUX_INTERNAL: 'a local handler threw while inbound frames were processed',
} as const;

/** One of the stable `PT_ERR_MUX_*` codes. */
export type MuxErrorCode = keyof typeof muxErrorCodes;

/** Every error raised by this package. `code` is stable; `cause` is kept when there is one. */
export class MuxError extends Error {
  /** Stable machine-readable code, see {@link muxErrorCodes}. */
  readonly code: MuxErrorCode;

  constructor(code: MuxErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? muxErrorCodes[code], options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MuxError';
    this.code = code;
  }
}

/**
 * The destroy policy of sessions and streams: Node's `destroy(err)` emits
 * `'error'`, which crashes the process when nobody listens. So with no
 * `'error'` listener the duplex closes quietly; the reason is kept by
 * `record` (their `closeError`) either way.
 */
export function destroyQuietly<T extends Duplex>(duplex: T, err: Error | null | undefined, record: (err: Error) => void): T {
  if (err) {
    record(err);
    if (duplex.listenerCount('error') === 0) return Duplex.prototype.destroy.call(duplex) as T;
  }
  return Duplex.prototype.destroy.call(duplex, err ?? undefined) as T;
}
