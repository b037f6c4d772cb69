/** Path of the agents' WebSocket endpoint on the gateway. */
export const TUNNEL_PATH = '/v1/tunnel';
/** Path of tunnel-client's WebSocket (yamux) endpoint on the gateway. */
export const RUNNER_WS_PATH = '/ws/runner';
/** Path of the JSON message protocol endpoint on the gateway. */
export const K8S_WS_PATH = '/ws/k8s';
/** WebSocket subprotocol the agent must offer on {@link TUNNEL_PATH}. */
export const SUBPROTOCOL = 'pipeops-tunnel.v1';
/** Version of the control/preamble protocol this code speaks, sent in `hello` and `welcome`. */
export const PROTOCOL_VERSION = 1;
/**
 * The oldest protocol version this code still accepts from its peer. The
 * skew rule: a release that raises {@link PROTOCOL_VERSION} keeps accepting
 * the previous one, so a gateway of minor version N serves agents of N and
 * N−1 — upgrade the gateway first, then the agents.
 */
export const MIN_PROTOCOL_VERSION = 1;

/**
 * Why a peer speaking protocol `theirs` cannot be served, or undefined when
 * it can. The message names both sides' protocol and software versions and
 * which side to upgrade.
 */
export function protocolMismatch(
  theirs: number,
  peer: { role: 'agent' | 'gateway'; version: string },
  self: { role: 'agent' | 'gateway'; version: string },
): string | undefined {
  if (Number.isInteger(theirs) && theirs >= MIN_PROTOCOL_VERSION && theirs <= PROTOCOL_VERSION) return undefined;
  const range = MIN_PROTOCOL_VERSION === PROTOCOL_VERSION ? `${PROTOCOL_VERSION}` : `${MIN_PROTOCOL_VERSION}–${PROTOCOL_VERSION}`;
  const upgrade = theirs > PROTOCOL_VERSION ? self.role : peer.role;
  return (
    `${peer.role} ${peer.version} speaks protocol ${String(theirs)}, ${self.role} ${self.version} speaks ${range}: upgrade the ${upgrade}` +
    (upgrade === 'gateway' ? ' (gateways first, then agents)' : '')
  );
}

/**
 * How often the default metrics' event-loop monitor samples (ms; prom-client's
 * `eventLoopMonitoringPrecision`, which `nodejs_eventloop_lag_*` come from).
 * prom-client's 10 ms woke an idle agent 100 times a second: three quarters
 * of its idle CPU (0.47–0.56 % of a core → 0.12–0.13 % at 200 ms).
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** Upgrade request headers the agent sends besides Authorization (lower-case, as Node exposes them). */
export const AgentHeaders = {
  agentId: 'x-pipeops-agent-id',
  cluster: 'x-pipeops-cluster',
  version: 'x-pipeops-agent-version',
  /**
   * Sent by an agent whose session a newer one for its cluster replaced: the
   * `sessionId` of that newer session. While any session holds the cluster
   * the gateway refuses the dial (409 `PT_ERR_CLUSTER_HELD`): the replaced
   * agent stands by instead of taking the cluster back.
   */
  replacedBy: 'x-pipeops-replaced-by',
} as const;

/**
 * `reason` label values of `pipeops_tunnel_connect_failures_total`, the same
 * on the agent (its failed dials) and the gateway (the agents it refused):
 * `held` is a replaced agent refused with 409 while the cluster is held.
 */
export const connectFailureReasons = ['auth', 'network', 'tls', 'handshake', 'timeout', 'held', 'other'] as const;
export type ConnectFailureReason = (typeof connectFailureReasons)[number];

/** Default maximum length of one control-channel line, in bytes (64 KiB). */
export const DEFAULT_MAX_CONTROL_LINE_BYTES = 64 * 1024;
/** Default maximum length of a stream preamble line, in bytes (8 KiB). */
export const DEFAULT_MAX_PREAMBLE_BYTES = 8 * 1024;
