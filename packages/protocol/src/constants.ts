/** Path of the agents' WebSocket endpoint on the gateway. */
export const TUNNEL_PATH = '/v1/tunnel';
/** Path of tunnel-client's WebSocket (yamux) endpoint on the gateway. */
export const RUNNER_WS_PATH = '/ws/runner';
/** Path of the JSON message protocol endpoint on the gateway. */
export const K8S_WS_PATH = '/ws/k8s';
/** WebSocket subprotocol the agent must offer on {@link TUNNEL_PATH}. */
export const SUBPROTOCOL = 'pipeops-tunnel.v1';
/** Version of the control/preamble protocol, sent in `hello`. */
export const PROTOCOL_VERSION = 1;

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

/** Default maximum length of one control-channel line, in bytes (64 KiB). */
export const DEFAULT_MAX_CONTROL_LINE_BYTES = 64 * 1024;
/** Default maximum length of a stream preamble line, in bytes (8 KiB). */
export const DEFAULT_MAX_PREAMBLE_BYTES = 8 * 1024;
