// The `/ws/k8s` front-end: each JSON request message of a runner socket is
// one exchange with the cluster's agent, answered as JSON messages.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import {
  DENIED_BY_HEADER,
  deniedByRule,
  forwardRequestHeaders,
  headerList,
  headerRecord,
  kubeStatus,
  requestOverStream,
  type AuditDenyRule,
} from '@pipeops/tunnel-protocol';
import type { ResolvedJsonProtocolDeps } from '../json-protocol/config.ts';
import { jsonProtocolErrorCodes, type JsonProtocolErrorCode } from '../json-protocol/errors.ts';
import { LineSplitter } from '../json-protocol/line-splitter.ts';
import { targetOf, type JsonRequest, type MessageId } from '../json-protocol/messages.ts';
import type { Outbox } from '../json-protocol/outbox.ts';
import { encodeBody, headerMap, isJsonType } from '../json-protocol/response-body.ts';
import type { RunnerLimits, RunnerSlot } from '../runner-limits.ts';
import type { ForwardContext, Refusal } from './core.ts';
import { REQUEST_ID_HEADER, requestIdFrom } from './request-id.ts';

/** Request headers the runner may not set: its credentials (the agent's are used upstream), the target's host, and framing the gateway computes. */
const DROPPED_REQUEST_HEADERS = new Set(['authorization', 'host', 'content-length', 'expect', REQUEST_ID_HEADER]);

/** What an exchange needs from its socket. */
export interface ExchangeContext {
  deps: ResolvedJsonProtocolDeps;
  runnerId: string;
  cluster: string;
  /** The runner's limits now (its tokens-file entry may change on a reload); undefined where none apply. */
  limits: () => Readonly<RunnerLimits> | undefined;
  outbox: Outbox;
  logger: Logger;
}

/** How an exchange ended, for the audit record. */
export type ExchangeOutcome = 'ok' | 'cancelled' | 'closed' | 'error';

/**
 * One runner request: a fresh stream to the agent carrying one HTTP/1.1
 * request, and the answer as JSON messages — one reply, or for `stream: true`
 * a head, a chunk per WATCH event / log line, then `done` (or `error`).
 * Failures before the response head are answered like the other routes,
 * with a Kubernetes `Status` reply (403 impersonation, 429 over the runner's
 * limits, 503 not connected, 504 no head in time, 502 otherwise); after the
 * head, with `{"id","error"}`.
 */
export class Exchange {
  readonly id: MessageId;
  readonly requestId = requestIdFrom(undefined);
  readonly #ctx: ExchangeContext;
  readonly #req: JsonRequest;
  readonly #forward: ForwardContext;
  readonly #onDone: (ex: Exchange) => void;
  readonly #abort = new AbortController();
  readonly #started = performance.now();
  #finished = false;
  #slot: RunnerSlot | undefined;
  #stream: Duplex | undefined;
  #response: IncomingMessage | undefined;
  #unwait: (() => void) | undefined;
  #status = 0;
  #bytes = 0;
  #rule: AuditDenyRule | undefined;

  constructor(ctx: ExchangeContext, req: JsonRequest, onDone: (ex: Exchange) => void) {
    this.#ctx = ctx;
    this.#req = req;
    this.id = req.id;
    this.#onDone = onDone;
    this.#forward = { runnerId: ctx.runnerId, cluster: ctx.cluster, path: targetOf(req), route: 'ws-k8s', requestId: this.requestId, limits: ctx.limits() };
  }

  /** True once the exchange sent its last message (or was cancelled). */
  get finished(): boolean {
    return this.#finished;
  }

  /** True while reading of the response is paused for a congested socket. */
  get paused(): boolean {
    return this.#unwait !== undefined;
  }

  /** Runs the exchange; never rejects. */
  start(): void {
    this.#run().catch((err: unknown) => {
      this.#ctx.logger.error({ event: 'json_request_failed', requestId: this.requestId, err }, 'json protocol request failed');
      this.#error('PT_ERR_JSON_UPSTREAM_FAILED', 'internal error');
    });
  }

  /**
   * Stops the exchange: the stream to the agent is destroyed (RST, so the
   * agent aborts the upstream request). `cancelled` (a runner `cancel`)
   * answers `{"id","done":true,"cancelled":true}`; `closed` (socket gone)
   * sends nothing.
   */
  cancel(why: 'cancelled' | 'closed'): void {
    if (this.#finished) return;
    if (why === 'cancelled') this.#ctx.outbox.send({ id: this.id, done: true, cancelled: true });
    this.#finish(why);
  }

  async #run(): Promise<void> {
    const core = this.#ctx.deps.forward;
    const sent = headerList(this.#req.headers);
    const admitted = core.admit(this.#forward, sent);
    if ('refusal' in admitted) {
      this.#refused(admitted.refusal);
      return;
    }
    this.#slot = admitted.slot;
    const exchange = core.begin(this.#forward, this.#abort.signal);
    let answer: Awaited<ReturnType<typeof requestOverStream>>;
    try {
      const stream = await exchange.agent;
      this.#stream = stream;
      stream.on('error', () => {
        /* surfaces through the request or the response */
      });
      answer = await requestOverStream(stream, {
        method: this.#req.method,
        path: this.#forward.path,
        headers: this.#upstreamHeaders(sent),
        body: this.#req.body,
        signal: exchange.signal,
      });
    } catch (err) {
      if (this.#finished) return;
      this.#refused(core.failure(err as Error));
      return;
    } finally {
      exchange.disarm();
    }
    if (this.#finished) {
      answer.response.destroy();
      if (answer.upgraded) answer.socket.destroy();
      return;
    }
    if (answer.upgraded) {
      answer.socket.destroy();
      this.#refused({ status: 502, message: 'the agent switched protocols on a plain request', headers: {} });
      return;
    }
    const res = answer.response;
    this.#response = res;
    this.#status = res.statusCode ?? 502;
    this.#rule ??= deniedByRule(res.headers[DENIED_BY_HEADER] as string | undefined);
    const headers = headerMap(res.rawHeaders);
    headers[REQUEST_ID_HEADER] ??= [this.requestId];
    const ok = this.#status >= 200 && this.#status < 300;
    if (this.#req.stream && ok) this.#streamBody(res, headers);
    else this.#collectBody(res, headers);
  }

  /** The runner's headers for the agent, by the hop-by-hop rule and without what the gateway sets itself. */
  #upstreamHeaders(sent: readonly string[]): Record<string, string | string[]> {
    const out = headerRecord(forwardRequestHeaders(sent, (lower) => DROPPED_REQUEST_HEADERS.has(lower)));
    if (this.#req.bodyIsJson && out['content-type'] === undefined) out['content-type'] = 'application/json';
    out[REQUEST_ID_HEADER] = this.requestId;
    return out;
  }

  /** The gateway's own answer before the response head: a `Status` reply, the request audited as denied when the refusal names a rule. */
  #refused(refusal: Refusal): void {
    if (refusal.rule !== undefined) this.#rule = refusal.rule;
    this.#status = refusal.status;
    const headers: Record<string, string[]> = { 'content-type': ['application/json'], [REQUEST_ID_HEADER]: [this.requestId] };
    for (const [name, value] of Object.entries(refusal.headers)) headers[name] = [value];
    this.#reply(refusal.status, headers, kubeStatus(refusal.status, refusal.message));
  }

  #reply(status: number, headers: Record<string, string[]>, body: unknown, bodyEncoding?: 'base64'): void {
    const msg: Record<string, unknown> = { id: this.id, status, headers, body };
    if (bodyEncoding !== undefined) msg.bodyEncoding = bodyEncoding;
    if (!this.#ctx.outbox.send(msg)) {
      this.#error('PT_ERR_JSON_TOO_DEEP', 'the response body is nested too deeply to be encoded as JSON');
      return;
    }
    this.#finish('ok');
  }

  #error(code: JsonProtocolErrorCode, message: string = jsonProtocolErrorCodes[code].message): void {
    if (this.#finished) return;
    this.#ctx.outbox.send({ id: this.id, error: { code, message } });
    this.#finish('error');
  }

  /** Non-stream (or non-2xx) answer: the body, bounded by `maxResponseBytes`, in one reply. */
  #collectBody(res: IncomingMessage, headers: Record<string, string[]>): void {
    const chunks: Buffer[] = [];
    this.#readBody(
      res,
      (chunk) => {
        if (this.#bytes > this.#ctx.deps.maxResponseBytes) {
          this.#error('PT_ERR_JSON_RESPONSE_TOO_LARGE', `response body exceeds ${this.#ctx.deps.maxResponseBytes} bytes`);
          return;
        }
        chunks.push(chunk);
      },
      () => {
        const { body, bodyEncoding } = encodeBody(Buffer.concat(chunks), res.headers['content-type']);
        this.#reply(this.#status, headers, body, bodyEncoding);
      },
    );
  }

  /** Stream answer: head, then one chunk per line (parsed JSON for JSON types, else a string), then done. */
  #streamBody(res: IncomingMessage, headers: Record<string, string[]>): void {
    const json = isJsonType(res.headers['content-type']);
    const splitter = new LineSplitter(this.#ctx.deps.maxResponseBytes);
    this.#ctx.outbox.send({ id: this.id, status: this.#status, headers });
    const emit = (line: Buffer): boolean => {
      if (!json) {
        this.#ctx.outbox.send({ id: this.id, chunk: line.toString('utf8') });
        return true;
      }
      const text = line.toString('utf8');
      if (text.trim() === '') return true;
      let event: unknown;
      try {
        event = JSON.parse(text);
      } catch {
        this.#error('PT_ERR_JSON_UPSTREAM_MALFORMED');
        return false;
      }
      if (!this.#ctx.outbox.send({ id: this.id, chunk: event })) {
        this.#error('PT_ERR_JSON_TOO_DEEP', 'a stream event is nested too deeply to be encoded as JSON');
        return false;
      }
      return true;
    };
    this.#readBody(
      res,
      (chunk) => {
        const { lines, tooLong } = splitter.push(chunk);
        for (const line of lines) if (!emit(line)) return;
        if (tooLong) this.#error('PT_ERR_JSON_RESPONSE_TOO_LARGE', `a stream chunk exceeds ${this.#ctx.deps.maxResponseBytes} bytes`);
      },
      () => {
        const last = splitter.end();
        if (last !== undefined && !emit(last)) return;
        this.#ctx.outbox.send({ id: this.id, done: true });
        this.#finish('ok');
      },
    );
  }

  /**
   * Reads `res` with backpressure from the runner socket; a response cut
   * short is an error for this id. A failure of `onChunk` or `onEnd` (thrown
   * from a stream event handler, it would end the process) ends this
   * request with an error instead.
   */
  #readBody(res: IncomingMessage, onChunk: (chunk: Buffer) => void, onEnd: () => void): void {
    const guarded = (fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        this.#ctx.logger.error({ event: 'json_request_failed', requestId: this.requestId, err }, 'json protocol request failed');
        this.#error('PT_ERR_JSON_UPSTREAM_FAILED', 'internal error');
      }
    };
    res.on('data', (chunk: Buffer) => {
      if (this.#finished) return;
      this.#bytes += chunk.length;
      guarded(() => onChunk(chunk));
      if (this.#finished || !this.#ctx.outbox.congested || this.#unwait !== undefined) return;
      res.pause();
      this.#unwait = this.#ctx.outbox.whenDrained(() => {
        this.#unwait = undefined;
        if (!this.#finished) res.resume();
      });
    });
    res.on('end', () => {
      if (!this.#finished) guarded(onEnd);
    });
    res.on('error', () => {
      /* 'close' follows */
    });
    res.once('close', () => {
      if (this.#finished || res.complete) return;
      this.#error('PT_ERR_JSON_UPSTREAM_FAILED', 'the response from the agent was cut short');
    });
  }

  #finish(outcome: ExchangeOutcome): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#unwait?.();
    this.#unwait = undefined;
    this.#slot?.release();
    if (outcome !== 'ok') {
      this.#abort.abort();
      this.#response?.destroy();
      this.#stream?.destroy();
    }
    const result = { status: this.#status, bytesIn: this.#req.body?.length ?? 0, bytesOut: this.#bytes, upgraded: false };
    const ctx = this.#rule === undefined ? this.#forward : { ...this.#forward, rule: this.#rule };
    this.#ctx.deps.forward.record(this.#req.method, ctx, result, performance.now() - this.#started, { outcome });
    this.#onDone(this);
  }
}
