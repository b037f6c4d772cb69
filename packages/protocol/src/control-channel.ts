import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { DEFAULT_MAX_CONTROL_LINE_BYTES } from './constants.ts';
import { TunnelError } from './errors.ts';

/**
 * What the cluster owner lets runners do through this agent, as the agent
 * enforces it (its config's `kubernetes.access_as` and `policy` section,
 * snake_case as written there). Reported, never negotiated: nothing the
 * gateway sends changes it. {@link parseControlMessage} keeps a reported
 * policy only when `read_only` and the three lists are all there with their
 * types, no list longer than {@link MAX_POLICY_ENTRIES}, no string longer
 * than {@link MAX_POLICY_STRING_CHARS}, and `access_as`, if given, one of its
 * two values; any other `policy` is dropped (the rest of the message stays).
 */
export interface OwnerPolicyReport {
  access_as?: 'agent' | 'runner';
  read_only?: boolean;
  deny_subresources?: string[];
  deny_resources?: string[];
  namespaces?: string[];
}
/** Longest list kept in an {@link OwnerPolicyReport}. */
export const MAX_POLICY_ENTRIES = 256;
/** Longest string kept in an {@link OwnerPolicyReport} (a Kubernetes name is at most 253). */
export const MAX_POLICY_STRING_CHARS = 253;

/** Agent → gateway, first message on the control stream. */
export interface HelloMessage {
  type: 'hello';
  agentId: string;
  name: string;
  clusterName: string;
  version: string;
  labels: Record<string, string>;
  protocolVersion: number;
  policy?: OwnerPolicyReport;
}
/** Gateway → agent, answer to `hello`; `protocolVersion` is the gateway's (absent from gateways before it was added: 1). */
export interface WelcomeMessage {
  type: 'welcome';
  sessionId: string;
  gatewayVersion: string;
  protocolVersion?: number;
}
/** Agent → gateway, periodic status report. */
export interface StatusMessage {
  type: 'status';
  at: string;
  uptimeSeconds: number;
  streamsActive: number;
  bytesIn: number;
  bytesOut: number;
  rttMs?: number;
  apiServer?: { reachable: boolean; version?: string; checkedAt?: string; error?: string };
  policy?: OwnerPolicyReport;
}
/** Gateway → agent: the gateway is draining; dial again (sent before GoAway). */
export interface ReconnectMessage {
  type: 'reconnect';
  reason: string;
}
/**
 * Either direction: a fatal problem, with a `PT_ERR_*` code. With
 * `PT_ERR_SESSION_REPLACED`, `replacedBy` is the `sessionId` of the newer
 * session that took the cluster (the agent sends it back in
 * `x-pipeops-replaced-by` when it dials again).
 */
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
  replacedBy?: string;
}

/** One control-channel message (NDJSON, one per line). */
export type ControlMessage = HelloMessage | WelcomeMessage | StatusMessage | ReconnectMessage | ErrorMessage;

/** Options of {@link ControlChannel}. */
export interface ControlChannelOptions {
  /** Longest accepted line, in bytes, newline excluded. Default 65_536 (64 KiB). */
  maxLineBytes?: number;
}

/**
 * The control stream: NDJSON over a Duplex (normally the first mux stream the
 * agent opens). Each line is validated; a malformed or oversized line emits
 * 'error' (a {@link TunnelError} `PT_ERR_CONTROL_INVALID` /
 * `PT_ERR_CONTROL_LINE_TOO_LARGE`) and closes the channel. When the peer ends
 * its side the channel ends ours too. Emits 'close' once when the channel or
 * its stream closes.
 */
export class ControlChannel extends EventEmitter {
  readonly stream: Duplex;
  readonly #maxLineBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #closed = false;

  constructor(stream: Duplex, opts: ControlChannelOptions = {}) {
    super();
    this.stream = stream;
    this.#maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_CONTROL_LINE_BYTES;
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    // The peer closing its side closes the channel: end ours too, so the stream fully closes.
    stream.on('end', () => this.close());
    stream.on('close', () => this.#finish());
    // Stream errors end the channel; the owner of the stream sees them too.
    stream.on('error', () => this.#finish());
  }

  /** True once the channel is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one message. Returns false (and sends nothing) when the channel is closed. */
  send(msg: ControlMessage): boolean {
    if (this.#closed || this.stream.destroyed || this.stream.writableEnded) return false;
    this.stream.write(`${JSON.stringify(msg)}\n`);
    return true;
  }

  /** Ends the stream (FIN) and closes the channel; idempotent. */
  close(): void {
    if (!this.stream.writableEnded && !this.stream.destroyed) this.stream.end();
    this.#finish();
  }

  override on(event: 'message', listener: (m: ControlMessage) => void): this;
  override on(event: 'error', listener: (e: TunnelError) => void): this;
  override on(event: 'close', listener: () => void): this;
  // biome-ignore lint/suspicious/noExplicitAny: the catch-all overload must match EventEmitter's own signature
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener);
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const part = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.#buffered + part.length > this.#maxLineBytes) {
        this.#fail(new TunnelError('PT_ERR_CONTROL_LINE_TOO_LARGE', `control line longer than ${this.#maxLineBytes} bytes`));
        return;
      }
      const line = this.#chunks.length === 0 ? part : Buffer.concat([...this.#chunks, part]);
      this.#chunks = [];
      this.#buffered = 0;
      if (line.length === 0 || (line.length === 1 && line[0] === 0x0d)) continue;
      let msg: ControlMessage;
      try {
        msg = parseControlMessage(line.toString('utf8'));
      } catch (err) {
        this.#fail(err instanceof TunnelError ? err : new TunnelError('PT_ERR_CONTROL_INVALID', undefined, { cause: err }));
        return;
      }
      this.emit('message', msg);
      if (this.#closed) return;
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0) {
      this.#buffered += rest.length;
      if (this.#buffered > this.#maxLineBytes) {
        this.#fail(new TunnelError('PT_ERR_CONTROL_LINE_TOO_LARGE', `control line longer than ${this.#maxLineBytes} bytes`));
        return;
      }
      this.#chunks.push(rest);
    }
  }

  #fail(err: TunnelError): void {
    if (this.#closed) return;
    // An 'error' nobody listens to would crash the process: emit only when heard.
    if (this.listenerCount('error') > 0) this.emit('error', err);
    this.close();
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    this.#buffered = 0;
    this.emit('close');
  }
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const optional = (v: unknown, check: (x: unknown) => boolean): boolean => v === undefined || check(v);

/**
 * Parses and validates one control line into a fresh message holding only
 * the fields this version knows: unknown fields are dropped, so whatever
 * they hold, however deeply nested, never reaches the gateway's state or its
 * answers. Unknown types and wrong types of known fields throw
 * {@link TunnelError} `PT_ERR_CONTROL_INVALID`; a `policy` that is not an
 * {@link OwnerPolicyReport} of the documented shape is dropped.
 */
export function parseControlMessage(line: string): ControlMessage {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new TunnelError('PT_ERR_CONTROL_INVALID', 'control line is not JSON', { cause: err });
  }
  if (!isObj(value)) throw invalid('control message is not an object');
  const m = value;
  switch (m.type) {
    case 'hello': {
      if (!isStr(m.agentId) || !isStr(m.name) || !isStr(m.clusterName) || !isStr(m.version) || !isNum(m.protocolVersion)) {
        throw invalid('hello: agentId, name, clusterName, version must be strings and protocolVersion a number');
      }
      if (!isObj(m.labels) || !Object.values(m.labels).every(isStr)) throw invalid('hello: labels must map strings to strings');
      const hello: HelloMessage = {
        type: 'hello',
        agentId: m.agentId,
        name: m.name,
        clusterName: m.clusterName,
        version: m.version,
        labels: { ...m.labels } as Record<string, string>,
        protocolVersion: m.protocolVersion,
      };
      const policy = parsePolicy(m.policy);
      if (policy !== undefined) hello.policy = policy;
      return hello;
    }
    case 'welcome':
      if (!isStr(m.sessionId) || !isStr(m.gatewayVersion)) throw invalid('welcome: sessionId and gatewayVersion must be strings');
      if (m.protocolVersion !== undefined && typeof m.protocolVersion !== 'number') throw invalid('welcome: protocolVersion must be a number');
      return {
        type: 'welcome',
        sessionId: m.sessionId,
        gatewayVersion: m.gatewayVersion,
        ...(m.protocolVersion !== undefined ? { protocolVersion: m.protocolVersion } : {}),
      };
    case 'status': {
      if (!isStr(m.at) || !isNum(m.uptimeSeconds) || !isNum(m.streamsActive) || !isNum(m.bytesIn) || !isNum(m.bytesOut) || !optional(m.rttMs, isNum)) {
        throw invalid('status: at must be a string; uptimeSeconds, streamsActive, bytesIn, bytesOut, rttMs numbers');
      }
      const status: StatusMessage = {
        type: 'status',
        at: m.at,
        uptimeSeconds: m.uptimeSeconds,
        streamsActive: m.streamsActive,
        bytesIn: m.bytesIn,
        bytesOut: m.bytesOut,
      };
      if (isNum(m.rttMs)) status.rttMs = m.rttMs;
      const api = m.apiServer;
      if (api !== undefined) {
        if (
          !isObj(api) ||
          typeof api.reachable !== 'boolean' ||
          !optional(api.version, isStr) ||
          !optional(api.checkedAt, isStr) ||
          !optional(api.error, isStr)
        ) {
          throw invalid('status: apiServer must be { reachable: boolean, version?, checkedAt?, error?: string }');
        }
        const apiServer: NonNullable<StatusMessage['apiServer']> = { reachable: api.reachable };
        if (isStr(api.version)) apiServer.version = api.version;
        if (isStr(api.checkedAt)) apiServer.checkedAt = api.checkedAt;
        if (isStr(api.error)) apiServer.error = api.error;
        status.apiServer = apiServer;
      }
      const policy = parsePolicy(m.policy);
      if (policy !== undefined) status.policy = policy;
      return status;
    }
    case 'reconnect':
      if (!isStr(m.reason)) throw invalid('reconnect: reason must be a string');
      return { type: 'reconnect', reason: m.reason };
    case 'error':
      if (!isStr(m.code) || !isStr(m.message)) throw invalid('error: code and message must be strings');
      if (m.replacedBy !== undefined && !isStr(m.replacedBy)) throw invalid('error: replacedBy must be a string');
      return { type: 'error', code: m.code, message: m.message, ...(m.replacedBy !== undefined ? { replacedBy: m.replacedBy } : {}) };
    default:
      throw invalid(`unknown control message type ${typeof m.type === 'string' ? JSON.stringify(m.type.slice(0, 64)) : typeof m.type}`);
  }
}

const POLICY_LISTS = ['deny_subresources', 'deny_resources', 'namespaces'] as const;
const ACCESS_AS = new Set(['agent', 'runner']);

/** A fresh {@link OwnerPolicyReport} from `v`, or undefined when `v` does not have that shape and bounds. */
function parsePolicy(v: unknown): OwnerPolicyReport | undefined {
  if (!isObj(v) || typeof v.read_only !== 'boolean') return undefined;
  const policy: OwnerPolicyReport = {};
  if (v.access_as !== undefined) {
    if (typeof v.access_as !== 'string' || !ACCESS_AS.has(v.access_as)) return undefined;
    policy.access_as = v.access_as as 'agent' | 'runner';
  }
  policy.read_only = v.read_only;
  for (const key of POLICY_LISTS) {
    const list = v[key];
    if (!Array.isArray(list) || list.length > MAX_POLICY_ENTRIES) return undefined;
    if (!list.every((x: unknown) => isStr(x) && x.length <= MAX_POLICY_STRING_CHARS)) return undefined;
    policy[key] = [...(list as string[])];
  }
  return policy;
}

function invalid(message: string): TunnelError {
  return new TunnelError('PT_ERR_CONTROL_INVALID', message);
}
