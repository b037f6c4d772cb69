export { TUNNEL_PATH, RUNNER_WS_PATH, K8S_WS_PATH, SUBPROTOCOL, PROTOCOL_VERSION, AgentHeaders, DEFAULT_MAX_CONTROL_LINE_BYTES, DEFAULT_MAX_PREAMBLE_BYTES } from './constants.ts';
export { TunnelError, errorCodes, isTunnelError } from './errors.ts';
export type { TunnelErrorCode, TunnelErrorOptions } from './errors.ts';
export { websocketDuplex } from './websocket-duplex.ts';
export type { WebSocketDuplexOptions } from './websocket-duplex.ts';
export { ControlChannel, parseControlMessage } from './control-channel.ts';
export type { ControlMessage, ControlChannelOptions, HelloMessage, WelcomeMessage, StatusMessage, ReconnectMessage, ErrorMessage } from './control-channel.ts';
export { encodePreamble, readPreamble, parsePreamble, STREAM_KINDS } from './preamble.ts';
export type { StreamPreamble, StreamKind } from './preamble.ts';
