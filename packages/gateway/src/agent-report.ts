// What an agent reports of itself (hello, status), bounded before anyone is shown it.
import type { HelloMessage, OwnerPolicyReport, StatusMessage } from '@pipeops/tunnel-protocol';

/** What `GET /v1/clusters` lists for one connected cluster. Times are ISO 8601 strings. */
export interface ClusterInfo {
  cluster: string;
  agentId: string;
  name: string;
  version: string;
  labels: Record<string, string>;
  connectedAt: string;
  /** The agent's last status report: only the fields the protocol knows, strings bounded (see {@link boundedStatus}). */
  lastStatus: StatusMessage | null;
  lastStatusAt: string | null;
  /** Last session round-trip time (mux ping), in ms, or null before the first measurement. */
  rttMs: number | null;
  /** Data streams the gateway has open to this agent. */
  streamsActive: number;
  /** The owner policy the agent reported last (status, else hello); absent when it reported none. */
  policy?: OwnerPolicyReport;
}

/** Longest string kept from an agent's hello or status report (longer ones are cut to it). */
export const MAX_REPORTED_STRING_CHARS = 253;
/** Longest `apiServer.error` kept from a status report. */
export const MAX_REPORTED_ERROR_CHARS = 1_024;
/** Labels kept from a hello: the first ones, in the order the agent sent them. */
export const MAX_REPORTED_LABELS = 64;

// What an agent reports is shown to every runner and admin that lists
// clusters: the control channel has already dropped unknown fields and
// checked types (parseControlMessage); these bound the sizes too, so one
// agent cannot make the listing large.
const cut = (s: string, max = MAX_REPORTED_STRING_CHARS): string => (s.length > max ? s.slice(0, max) : s);

/** `hello` with its strings cut to {@link MAX_REPORTED_STRING_CHARS} and at most {@link MAX_REPORTED_LABELS} labels. */
export function boundedHello(h: HelloMessage): HelloMessage {
  // Prototype-less, so a label named "__proto__" is just a label.
  const labels = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(h.labels).slice(0, MAX_REPORTED_LABELS)) labels[cut(k)] = cut(v);
  const out: HelloMessage = {
    type: 'hello',
    agentId: cut(h.agentId),
    name: cut(h.name),
    clusterName: cut(h.clusterName),
    version: cut(h.version),
    labels,
    protocolVersion: h.protocolVersion,
  };
  if (h.policy !== undefined) out.policy = h.policy;
  return out;
}

/** A status report with its strings cut ({@link MAX_REPORTED_STRING_CHARS}; `apiServer.error` {@link MAX_REPORTED_ERROR_CHARS}). */
export function boundedStatus(s: StatusMessage): StatusMessage {
  const out: StatusMessage = {
    type: 'status',
    at: cut(s.at, 64),
    uptimeSeconds: s.uptimeSeconds,
    streamsActive: s.streamsActive,
    bytesIn: s.bytesIn,
    bytesOut: s.bytesOut,
  };
  if (s.rttMs !== undefined) out.rttMs = s.rttMs;
  if (s.apiServer !== undefined) {
    const a = s.apiServer;
    const api: NonNullable<StatusMessage['apiServer']> = { reachable: a.reachable };
    if (a.version !== undefined) api.version = cut(a.version);
    if (a.checkedAt !== undefined) api.checkedAt = cut(a.checkedAt, 64);
    if (a.error !== undefined) api.error = cut(a.error, MAX_REPORTED_ERROR_CHARS);
    out.apiServer = api;
  }
  if (s.policy !== undefined) out.policy = s.policy;
  return out;
}
