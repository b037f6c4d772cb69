import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { createAuditSink, type AuditSink } from '@pipeops/tunnel-protocol';
import { gatewayError } from '../errors.ts';
import { ForwardCore } from '../forward/core.ts';

/** The preamble the endpoint asks the gateway to write on each stream it opens. */
export interface JsonProtocolPreamble {
  kind: 'http';
  requestId: string;
  runnerId?: string;
  cluster?: string;
}

/** Dependencies and limits of {@link createJsonProtocolEndpoint}. Sizes in bytes, durations in milliseconds. */
export interface JsonProtocolDeps {
  /** Opens a data stream to the cluster's agent, preamble written (the gateway's `openStream`). Rejects TunnelError with status 503 when the cluster is not connected. */
  openStream: (cluster: string, preamble: JsonProtocolPreamble) => Promise<Duplex>;
  /** Injected pino logger. */
  logger: Logger;
  /** Where the one audit record per request goes. Default: the logger. */
  audit?: AuditSink;
  /** Largest message accepted from the runner (bytes); a bigger one closes the socket with 1009. Required. */
  maxMessageBytes: number;
  /** Requests in flight on one socket; one more gets `PT_ERR_JSON_TOO_MANY_REQUESTS`. Default 256. */
  maxConcurrentRequests?: number;
  /** Largest non-stream response body, and largest single stream chunk (one WATCH event or log line), buffered to build one message (bytes). Default 32 MiB. */
  maxResponseBytes?: number;
  /** While the socket's `bufferedAmount` is above this, response streams on it are paused (bytes). Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Time from sending a request to the agent until the response head; beyond it the runner gets a 504 Status (ms). Default 30 000. */
  headTimeoutMs?: number;
  /**
   * The gateway's forwarding core the requests go through (its limits, metrics and audit apply).
   * Default: one over `openStream`, `audit` and `headTimeoutMs`, with no limits and no metrics.
   */
  forward?: ForwardCore;
  /** Interval of WebSocket pings to the runner; a runner that has not answered the previous ping is terminated, cancelling its requests (ms). Default 30 000. */
  pingIntervalMs?: number;
  /** Time `close()` waits for runner sockets to finish the closing handshake before terminating them (ms). Default 2 000. */
  closeTimeoutMs?: number;
}

/** {@link JsonProtocolDeps} with every default applied. */
export type ResolvedJsonProtocolDeps = Required<JsonProtocolDeps>;

/** Defaults of the optional {@link JsonProtocolDeps} limits. */
export const defaultJsonProtocolLimits = Object.freeze({
  maxConcurrentRequests: 256,
  maxResponseBytes: 32 * 1024 * 1024,
  maxBufferedBytes: 1024 * 1024,
  headTimeoutMs: 30_000,
  closeTimeoutMs: 2_000,
  pingIntervalMs: 30_000,
});

/** Applies defaults and checks every limit; throws TunnelError `PT_ERR_GATEWAY_CONFIG` naming the field. */
export function resolveJsonProtocolDeps(deps: JsonProtocolDeps): ResolvedJsonProtocolDeps {
  if (typeof deps.openStream !== 'function') throw gatewayError('PT_ERR_GATEWAY_CONFIG', 'json protocol: openStream must be a function');
  if (deps.logger === undefined || deps.logger === null) throw gatewayError('PT_ERR_GATEWAY_CONFIG', 'json protocol: logger is required');
  const resolved: ResolvedJsonProtocolDeps = { ...defaultJsonProtocolLimits, ...stripUndefined(deps) } as ResolvedJsonProtocolDeps;
  resolved.audit ??= createAuditSink({ logger: deps.logger, message: 'json protocol request' });
  resolved.forward ??= new ForwardCore({ openStream: deps.openStream, audit: resolved.audit, agentHeadTimeoutMs: resolved.headTimeoutMs });
  for (const key of [
    'maxMessageBytes',
    'maxConcurrentRequests',
    'maxResponseBytes',
    'maxBufferedBytes',
    'headTimeoutMs',
    'closeTimeoutMs',
    'pingIntervalMs',
  ] as const) {
    const v = resolved[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw gatewayError('PT_ERR_GATEWAY_CONFIG', `json protocol: ${key} must be a positive integer, got ${String(v)}`);
    }
  }
  return resolved;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
