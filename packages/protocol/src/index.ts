export {
  TUNNEL_PATH,
  RUNNER_WS_PATH,
  K8S_WS_PATH,
  SUBPROTOCOL,
  PROTOCOL_VERSION,
  MIN_PROTOCOL_VERSION,
  protocolMismatch,
  AgentHeaders,
  connectFailureReasons,
  DEFAULT_MAX_CONTROL_LINE_BYTES,
  DEFAULT_MAX_PREAMBLE_BYTES,
  EVENT_LOOP_SAMPLE_MS,
  type ConnectFailureReason,
} from './constants.ts';
export { RunnerGoneError, TunnelError, errorCodes, isTunnelError } from './errors.ts';
export { addressedCluster, clusterAddressSuffixProblem, clusterServerName, DEFAULT_CLUSTER_ADDRESS_SUFFIX, DNS_LABEL_RE } from './cluster-address.ts';
export type { AddressedCluster } from './cluster-address.ts';
export type { TunnelErrorCode, TunnelErrorOptions } from './errors.ts';
export { websocketDuplex } from './websocket-duplex.ts';
export type { WebSocketDuplexOptions } from './websocket-duplex.ts';
export { tunnelWebSocketClientOptions } from './websocket-options.ts';
export type { TunnelWebSocketClientOptions } from './websocket-options.ts';
export { openWebSocket } from './websocket-open.ts';
export type { OpenWebSocketOptions } from './websocket-open.ts';
export { ControlChannel, parseControlMessage } from './control-channel.ts';
export type {
  ControlMessage,
  ControlChannelOptions,
  HelloMessage,
  OwnerPolicyReport,
  WelcomeMessage,
  StatusMessage,
  ReconnectMessage,
  ErrorMessage,
} from './control-channel.ts';
export { encodePreamble, readPreamble, parsePreamble, STREAM_KINDS } from './preamble.ts';
export { readLine, type LineErrors } from './line-reader.ts';
export type { StreamPreamble, StreamKind } from './preamble.ts';
export {
  HOP_BY_HOP_HEADERS,
  connectionTokens,
  firstHeader,
  forwardRequestHeaders,
  headerList,
  headerPairs,
  headerRecord,
  isHopByHop,
  relayResponseHeaders,
  withoutHeaders,
} from './http-headers.ts';
export type { AnyHeaders, ResponseRelay } from './http-headers.ts';
export {
  HeadError,
  closingResponse,
  headBytes,
  headerValue,
  parseFieldLine,
  parseRequestHead,
  parseResponseHead,
  readHead,
  requestTargetProblem,
  statusLine,
  statusOf,
} from './http-head.ts';
export type { RequestHead, ResponseHead } from './http-head.ts';
export { nodeHttp } from './node-http.ts';
export { readOnWhileFlushing } from './http-server-flush-pause.ts';
export { answerFraming, HttpBodyError, RequestBody, requestBodyFraming } from './http-body.ts';
export type { AnswerFraming, BodyFraming, RequestBodyOptions } from './http-body.ts';
export { RawResponse, chunkPieces, lastChunk } from './http-response.ts';
export { answerAndClose, answerClientError, clientErrorStatus, closeWithStatus } from './raw-answer.ts';
export { requestOverStream, serveHttpOverStream } from './http-over-stream.ts';
export type { StreamRequest, StreamResponse } from './http-over-stream.ts';
export { headDeadline, openExchange, openUnlessAborted, type OpeningExchange } from './exchange-open.ts';
export { relayRequest, relayUpgrade } from './http-relay.ts';
export type { RelayOptions, RelayResult } from './http-relay.ts';
export { afterOutput } from './after-output.ts';
export { drain, splice, whenBothClosed, writeWithBackpressure } from './splice.ts';
export type { Pausable, SpliceTally } from './splice.ts';
export { findImpersonationHeader, impersonationRefusal, isImpersonationHeader } from './impersonation.ts';
export { DENIED_BY_HEADER, NO_AUDIT_TARGET, auditDenyRules, auditPath, auditRecord, auditTarget, createAuditSink, deniedByRule } from './audit.ts';
export type { AuditDenyRule, AuditFields, AuditLogger, AuditRecord, AuditSink, AuditSinkOptions, AuditTarget } from './audit.ts';
export { requestInfo } from './request-info.ts';
export type { RequestInfo } from './request-info.ts';
export { HeadTimeoutError, kubeStatus, kubeStatusJson, kubeStatusResponse, relayErrorStatus, sendKubeStatus, statusReason } from './kube-status.ts';
export type { KubeStatus } from './kube-status.ts';
export { STREAM_RESULTS, StreamAccounting, streamMetricSpecs } from './stream-accounting.ts';
export type { AccountingGauge, StreamResult } from './stream-accounting.ts';
export { beforeRead, DeferredCounter, type AccountingCounter, type Labels } from './deferred-counter.ts';
