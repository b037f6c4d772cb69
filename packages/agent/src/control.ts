import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ControlChannel, PROTOCOL_VERSION, protocolMismatch } from '@pipeops/tunnel-protocol';
import type { ControlMessage, OwnerPolicyReport, StatusMessage, WelcomeMessage } from '@pipeops/tunnel-protocol';
import type { AgentOptions, StatusExtras } from './config.ts';
import { AgentError } from './errors.ts';

/** Numbers the status report needs from the agent, read at send time. */
export interface StatusSource {
  uptimeSeconds(): number;
  streamsActive(): number;
  bytes(): { bytesIn: number; bytesOut: number };
  rttMs(): number | undefined;
}

export interface AgentControlOptions {
  stream: Duplex;
  /** The agent's options; `ownerPolicy` (what the agent enforces, snake_case as in its config) goes into hello and every status report. */
  options: AgentOptions & { ownerPolicy?: OwnerPolicyReport };
  source: StatusSource;
  logger: Logger;
}

/**
 * The agent side of the control stream: hello → welcome, then a status
 * report every `pollIntervalMs`. Emits `'reconnect'` (reason) when the
 * gateway asks the agent to dial again, `'replaced'` (the replacing
 * `sessionId`, if the gateway named it) when a newer session for the cluster
 * took its place, and `'close'` when the channel ends.
 */
export class AgentControl extends EventEmitter {
  readonly #o: AgentControlOptions;
  readonly #channel: ControlChannel;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(o: AgentControlOptions) {
    super();
    this.#o = o;
    this.#channel = new ControlChannel(o.stream);
    this.#channel.on('error', (err) => {
      o.logger.warn({ err: { code: err.code, message: err.message } }, 'control channel error');
    });
    this.#channel.on('close', () => this.close());
    this.#channel.on('message', (m) => this.#onMessage(m));
  }

  /** Sends hello and resolves with the welcome; rejects PT_ERR_HANDSHAKE_TIMEOUT / PT_ERR_HANDSHAKE. */
  handshake(timeoutMs: number): Promise<WelcomeMessage> {
    const o = this.#o.options;
    return new Promise<WelcomeMessage>((resolve, reject) => {
      const timer = setTimeout(() => done(new AgentError('PT_ERR_HANDSHAKE_TIMEOUT', `no welcome within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      const onMessage = (m: ControlMessage): void => {
        if (m.type === 'welcome') {
          // A gateway too new for this agent says so in its welcome (one that predates the field speaks protocol 1).
          const mismatch = protocolMismatch(
            m.protocolVersion ?? 1,
            { role: 'gateway', version: m.gatewayVersion.slice(0, 64) },
            { role: 'agent', version: o.version },
          );
          if (mismatch !== undefined) done(new AgentError('PT_ERR_PROTOCOL_VERSION', mismatch));
          else done(undefined, m);
        } else if (m.type === 'error' && m.code === 'PT_ERR_PROTOCOL_VERSION') {
          done(new AgentError('PT_ERR_PROTOCOL_VERSION', m.message));
        } else if (m.type === 'error') {
          done(new AgentError('PT_ERR_HANDSHAKE', `gateway refused hello: ${m.code}: ${m.message}`));
        }
      };
      const onClose = (): void => done(new AgentError('PT_ERR_HANDSHAKE', 'control stream closed before welcome'));
      const done = (err: Error | undefined, welcome?: WelcomeMessage): void => {
        clearTimeout(timer);
        this.#channel.off('message', onMessage);
        this.#channel.off('close', onClose);
        if (err !== undefined) reject(err);
        else if (welcome !== undefined) resolve(welcome);
      };
      this.#channel.on('message', onMessage);
      this.#channel.on('close', onClose);
      this.#channel.send({
        type: 'hello',
        agentId: o.agentId,
        name: o.name,
        clusterName: o.clusterName,
        version: o.version,
        labels: o.labels,
        protocolVersion: PROTOCOL_VERSION,
        ...(o.ownerPolicy !== undefined ? { policy: o.ownerPolicy } : {}),
      });
    });
  }

  /** Starts periodic status reports (the first one right away). */
  startReports(): void {
    if (this.#closed || this.#timer !== undefined) return;
    void this.sendStatus();
    this.#timer = setInterval(() => void this.sendStatus(), this.#o.options.pollIntervalMs);
    this.#timer.unref();
  }

  /** Builds and sends one status report; failures of the status hook are logged, not fatal. */
  async sendStatus(): Promise<boolean> {
    const s = this.#o.source;
    const { bytesIn, bytesOut } = s.bytes();
    const msg: StatusMessage = {
      type: 'status',
      at: new Date().toISOString(),
      uptimeSeconds: Math.round(s.uptimeSeconds()),
      streamsActive: s.streamsActive(),
      bytesIn,
      bytesOut,
    };
    const rtt = s.rttMs();
    if (rtt !== undefined) msg.rttMs = rtt;
    const policy = this.#o.options.ownerPolicy;
    if (policy !== undefined) msg.policy = policy;
    const provider = this.#o.options.statusProvider;
    if (provider !== undefined) {
      try {
        const extra: StatusExtras = await provider();
        if (extra.apiServer !== undefined) msg.apiServer = extra.apiServer;
      } catch (err) {
        this.#o.logger.warn({ err }, 'status provider failed');
      }
    }
    if (this.#closed) return false;
    return this.#channel.send(msg);
  }

  /** Stops reports and ends the control stream; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#channel.close();
    this.emit('close');
  }

  #onMessage(m: ControlMessage): void {
    if (m.type === 'reconnect') {
      this.#o.logger.info({ reason: m.reason }, 'gateway asked the agent to reconnect');
      this.emit('reconnect', m.reason);
    } else if (m.type === 'error' && m.code === 'PT_ERR_SESSION_REPLACED') {
      this.emit('replaced', m.replacedBy);
    } else if (m.type === 'error') {
      this.#o.logger.warn({ code: m.code, message: m.message }, 'gateway reported an error');
    }
  }
}
