import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { createSession, GoAwayCode, type Session, type SessionOptions, type Stream } from '@pipeops/tunnel-mux';
import {
  ControlChannel,
  PROTOCOL_VERSION,
  TunnelError,
  encodePreamble,
  protocolMismatch,
  websocketDuplex,
  type ControlMessage,
  type HelloMessage,
  type StatusMessage,
  type StreamPreamble,
} from '@pipeops/tunnel-protocol';
import { boundedHello, boundedStatus, type ClusterInfo } from './agent-report.ts';
import { kindLabel, type GatewayMetrics, type StreamResult } from './metrics.ts';
import type { AgentIdentity } from './tokens.ts';

/** What an {@link AgentConnection} needs from the gateway. */
export interface AgentConnectionDeps {
  logger: Logger;
  metrics: GatewayMetrics;
  gatewayVersion: string;
  handshakeTimeoutMs: number;
  mux: Partial<SessionOptions> | undefined;
  /** Called once the agent said hello; the connection is live when this returns. */
  onReady: (conn: AgentConnection) => void;
  /** Called once when the session is gone (after onReady or not). */
  onClosed: (conn: AgentConnection) => void;
}

const SESSION_END_GRACE_MS = 2_000;

/**
 * One agent's tunnel: the WebSocket, the mux server session on it, and the
 * control channel (the first stream the agent opens). Emits 'idle' whenever
 * its last data stream closes.
 */
export class AgentConnection extends EventEmitter {
  readonly sessionId = randomUUID();
  readonly cluster: string;
  readonly tokenId: string;
  readonly ws: WebSocket;
  readonly session: Session;
  readonly log: Logger;
  hello: HelloMessage | undefined;
  connectedAt: Date | undefined;
  lastStatus: StatusMessage | undefined;
  lastStatusAt: Date | undefined;
  streamsActive = 0;
  #control: ControlChannel | undefined;
  #deps: AgentConnectionDeps;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #ready = false;
  #failureCounted = false;

  constructor(ws: WebSocket, identity: AgentIdentity, remoteAddress: string | undefined, deps: AgentConnectionDeps) {
    super();
    this.cluster = identity.cluster;
    this.tokenId = identity.tokenId;
    this.ws = ws;
    this.#deps = deps;
    this.log = deps.logger.child({ cluster: this.cluster, sessionId: this.sessionId, remoteAddress });
    const transport = websocketDuplex(ws);
    transport.on('error', (err) => this.log.debug({ event: 'agent_transport_error', err }, 'agent transport error'));
    this.session = createSession(transport, { ...deps.mux, client: false });
    this.session.on('error', (err: Error) => this.log.debug({ event: 'agent_session_error', err }, 'agent session error'));
    this.session.on('stream', (stream: Duplex) => this.#onInboundStream(stream));
    this.session.once('close', () => this.#onSessionClosed());
    ws.once('close', () => {
      if (!this.session.isClosed) this.session.destroy();
    });
    this.#handshakeTimer = setTimeout(() => this.#onHandshakeTimeout(), deps.handshakeTimeoutMs);
    this.#handshakeTimer.unref();
  }

  /** True once the agent said hello and got welcome. */
  get ready(): boolean {
    return this.#ready;
  }
  get closed(): boolean {
    return this.#closed;
  }

  /** Opens a data stream to the agent with the preamble written. Throws TunnelError 503 if the session cannot take one. */
  openStream(preamble: Omit<StreamPreamble, 'v'>): Stream {
    let stream: Stream;
    try {
      // Each runner is its own scheduling group on the session, from the first byte (the preamble) on.
      stream = this.session.open().setGroup(preamble.runnerId);
    } catch (err) {
      throw new TunnelError('PT_ERR_CLUSTER_NOT_CONNECTED', `cannot open a stream to cluster ${this.cluster}`, { cause: err });
    }
    const kind = kindLabel(preamble.kind);
    this.streamsActive++;
    this.#deps.metrics.streams.opened(kind);
    let result: Exclude<StreamResult, 'refused'> = 'ok';
    stream.on('error', (err: Error & { code?: string }) => {
      result = err.code === 'PT_ERR_MUX_STREAM_RESET' ? 'reset' : 'error';
    });
    stream.on('close', () => {
      this.streamsActive--;
      this.#deps.metrics.streams.closed(kind, result);
      if (this.streamsActive === 0) this.emit('idle');
    });
    stream.write(encodePreamble({ v: 1, ...preamble }));
    return stream;
  }

  /** Sends a control message; false when the control channel is not up. */
  send(msg: ControlMessage): boolean {
    return this.#control?.send(msg) ?? false;
  }

  /** Draining: tell the agent to dial again, then GoAway (existing streams continue). */
  drain(reason: string): void {
    if (this.#closed) return;
    this.send({ type: 'reconnect', reason });
    if (!this.session.isClosed && !this.session.localGoAway) this.session.goAway(GoAwayCode.normal);
  }

  /**
   * Ends the session: optional control `error` message, GoAway, then the
   * mux's graceful close (open streams get up to `graceMs`), then abort.
   */
  async shutdown(graceMs: number, error?: { code: string; message: string; replacedBy?: string }): Promise<void> {
    if (this.#closed) return;
    if (error) this.send({ type: 'error', ...error });
    if (!this.session.isClosed && !this.session.localGoAway) this.session.goAway(GoAwayCode.normal);
    this.#control?.close();
    try {
      await this.session.close(Math.max(1, graceMs));
    } catch {
      // close() only rejects on an already failed session; the session is gone either way.
    }
    this.abort();
  }

  /** Abrupt end: every stream reset, socket terminated. */
  abort(): void {
    if (!this.session.isClosed) this.session.destroy();
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }

  info(): ClusterInfo {
    const h = this.hello;
    const rtt = this.session.rttMs ?? this.lastStatus?.rttMs;
    const info: ClusterInfo = {
      cluster: this.cluster,
      agentId: h?.agentId ?? '',
      name: h?.name ?? '',
      version: h?.version ?? '',
      labels: { ...(h?.labels ?? {}) },
      connectedAt: (this.connectedAt ?? new Date(0)).toISOString(),
      lastStatus: this.lastStatus ?? null,
      lastStatusAt: this.lastStatusAt?.toISOString() ?? null,
      rttMs: rtt ?? null,
      streamsActive: this.streamsActive,
    };
    const policy = this.lastStatus?.policy ?? h?.policy;
    if (policy !== undefined) info.policy = policy;
    return info;
  }

  #onInboundStream(stream: Duplex): void {
    stream.on('error', () => {});
    if (this.#control !== undefined || this.#closed) {
      // Only the control stream may be opened by the agent: anything else is reset.
      this.log.warn({ event: 'agent_stream_refused' }, 'agent opened an unexpected stream; reset');
      this.#deps.metrics.streams.refused('other');
      stream.destroy();
      return;
    }
    const control = new ControlChannel(stream);
    this.#control = control;
    control.on('message', (m) => this.#onControlMessage(m));
    control.on('error', (err) => {
      this.log.warn({ event: 'control_invalid', code: err.code, err }, 'agent sent an invalid control message; closing session');
      this.#countFailure('handshake');
      this.#protocolViolation();
    });
    control.on('close', () => {
      if (!this.#closed) {
        this.log.info({ event: 'control_closed' }, 'agent closed the control stream; closing session');
        void this.shutdown(SESSION_END_GRACE_MS);
      }
    });
  }

  #onControlMessage(m: ControlMessage): void {
    if (!this.#ready) {
      if (m.type !== 'hello') {
        this.log.warn({ event: 'handshake_failed', code: 'PT_ERR_HANDSHAKE', type: m.type }, 'first control message was not hello');
        this.#countFailure('handshake');
        this.#protocolViolation({ code: 'PT_ERR_HANDSHAKE', message: 'the first control message must be hello' });
        return;
      }
      const mismatch = protocolMismatch(
        m.protocolVersion,
        { role: 'agent', version: m.version.slice(0, 64) },
        { role: 'gateway', version: this.#deps.gatewayVersion },
      );
      if (mismatch !== undefined) {
        this.log.warn(
          { event: 'handshake_failed', code: 'PT_ERR_PROTOCOL_VERSION', protocolVersion: m.protocolVersion, agentVersion: m.version.slice(0, 64) },
          mismatch,
        );
        this.#countFailure('handshake');
        void this.shutdown(SESSION_END_GRACE_MS, { code: 'PT_ERR_PROTOCOL_VERSION', message: mismatch });
        return;
      }
      if (m.clusterName !== '' && m.clusterName !== this.cluster) {
        this.log.warn(
          { event: 'hello_cluster_mismatch', helloCluster: m.clusterName.slice(0, 253) },
          "hello names another cluster than the agent token; using the token's",
        );
      }
      if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
      this.#handshakeTimer = undefined;
      this.hello = boundedHello(m);
      this.connectedAt = new Date();
      this.#ready = true;
      this.#deps.onReady(this);
      if (this.#closed) return;
      this.send({ type: 'welcome', sessionId: this.sessionId, gatewayVersion: this.#deps.gatewayVersion, protocolVersion: PROTOCOL_VERSION });
      this.log.info({ event: 'agent_connected', agentId: this.hello.agentId, name: this.hello.name, version: this.hello.version }, 'agent connected');
      // One ping at once, so /v1/clusters shows a round-trip time from the
      // start rather than after the first keepalive interval.
      this.session.ping().then(
        (ms) => this.#deps.metrics.rtt.observe(ms / 1000),
        () => {
          /* a session that dies here is reported by its close */
        },
      );
      return;
    }
    switch (m.type) {
      case 'status':
        this.lastStatus = boundedStatus(m);
        this.lastStatusAt = new Date();
        if (this.session.rttMs !== undefined) this.#deps.metrics.rtt.observe(this.session.rttMs / 1000);
        this.log.debug({ event: 'agent_status', streamsActive: m.streamsActive, apiReachable: m.apiServer?.reachable }, 'agent status');
        return;
      case 'error':
        this.log.warn({ event: 'agent_error', code: m.code, message: m.message }, 'agent reported an error');
        return;
      default:
        this.log.warn({ event: 'control_unexpected', type: m.type }, 'unexpected control message from agent; ignored');
    }
  }

  #protocolViolation(error?: { code: string; message: string }): void {
    if (this.#closed) return;
    if (error) this.send({ type: 'error', code: error.code, message: error.message });
    if (!this.session.isClosed) this.session.goAway(GoAwayCode.protocolError);
    this.abort();
  }

  #onHandshakeTimeout(): void {
    this.#handshakeTimer = undefined;
    if (this.#ready || this.#closed) return;
    this.log.warn({ event: 'handshake_timeout', code: 'PT_ERR_HANDSHAKE_TIMEOUT', timeoutMs: this.#deps.handshakeTimeoutMs }, 'no hello in time; closing');
    this.#countFailure('timeout');
    this.abort();
  }

  #countFailure(reason: 'handshake' | 'timeout' | 'network'): void {
    if (this.#ready || this.#failureCounted) return;
    this.#failureCounted = true;
    this.#deps.metrics.connectFailures.inc({ reason });
  }

  #onSessionClosed(): void {
    if (this.#closed) return;
    // A session that ends before hello (garbage bytes, dropped socket…) failed its handshake.
    const err = (this.session as { closeError?: Error & { code?: string } }).closeError;
    this.#countFailure(err?.code === 'PT_ERR_MUX_TRANSPORT_CLOSED' ? 'network' : 'handshake');
    if (!this.#ready) this.log.info({ event: 'agent_handshake_aborted', code: err?.code }, 'agent session ended before hello');
    this.#closed = true;
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#control?.close();
    if (this.ws.readyState !== WebSocket.CLOSED) {
      // The mux ended the transport (close 1000); make sure the socket really goes.
      setTimeout(() => {
        if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
      }, SESSION_END_GRACE_MS).unref();
    }
    this.#deps.onClosed(this);
    if (this.streamsActive === 0) this.emit('idle');
  }
}
