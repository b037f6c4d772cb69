// One stream's exchange with the API server, as every part of the agent's
// kube proxy sees it: the options they read, the state kept per stream, and
// the figures recorded when it is over. Types only: the parts depend on
// this, never on each other.
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { AuditDenyRule, AuditSink, AuditTarget, StreamPreamble } from '@pipeops/tunnel-protocol';
import type { AdmissionOptions } from './admission.ts';
import type { KubeCredentials } from './credentials.ts';
import type { KubeMetrics } from './kube-metrics.ts';
import type { KubeUpstream } from './upstream.ts';
import type { KubeVerb } from './verb.ts';

/** Options of the kube proxy (see createKubeProxy). */
export interface KubeProxyOptions {
  /** The agent's API-server access, or the reason there is none (every request is then answered 503). */
  access: { credentials: KubeCredentials; upstream: KubeUpstream } | { unavailable: string };
  metrics: KubeMetrics;
  /** Who the agent acts as, and the cluster owner's policy (see admission.ts). */
  admission: AdmissionOptions;
  /** Where the one audit record per request goes. */
  audit: AuditSink;
  /** Max bytes of a request head. Default `32_768`. */
  maxHeaderBytes?: number;
  /** After the agent's response ended, how long the far side may keep its half of the stream open before it is reset, ms. Default `30_000`. */
  lingerMs?: number;
}

/** The one request of a stream, its head as read by the agent (http-handler.ts). */
export interface KubeRequest {
  method: string;
  /** The request target as sent (origin-form once checked). */
  url: string;
  /** An HTTP/1.0 request (no chunked coding either way). */
  http10: boolean;
  /** `[name, value, …]` in order, names as sent. */
  rawHeaders: string[];
  /** What the stream delivered after the head: the body's first bytes, or an upgrade's. */
  rest: Buffer;
}

/** What one stream's request needs besides the request itself. */
export interface Exchange {
  stream: Duplex;
  preamble: StreamPreamble;
  /** The stream's logging context (its logger is made on first use). */
  log: { readonly logger: Logger };
  started: number;
  /** When the stream arrived (ISO 8601), for the audit record. */
  time: string;
  /** Set once the exchange is recorded (log line + metrics). */
  recorded: boolean;
  /** Set when the stream closed before the exchange finished (the runner went away). */
  gone: boolean;
  /** Set once a 101 turned the stream into a raw pipe (a half-open stream may then last as long as the session). */
  upgraded: boolean;
  /** The upstream request in flight, if any (undici's dispatch controller): the stream closing aborts it. */
  inFlight: { abort(reason: Error): void } | undefined;
}

/** Figures of one finished exchange. */
export interface ExchangeResult {
  method: string;
  path: string;
  verb: KubeVerb;
  status: number | undefined;
  bytesIn: number;
  bytesOut: number;
  upgraded: boolean;
  error?: unknown;
  /** The request-info fields (verb, group, resource, …) once the request was read. */
  target?: AuditTarget;
  /** Set when the agent refused the request (impersonation, the owner's policy, identity). */
  rule?: AuditDenyRule;
}
