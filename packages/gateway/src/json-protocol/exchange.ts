import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { HOP_BY_HOP_HEADERS, requestOverStream } from '@pipeops/tunnel-protocol';
import type { ResolvedJsonProtocolDeps } from './config.ts';
import { jsonProtocolErrorCodes, type JsonProtocolErrorCode } from './errors.ts';
import { LineSplitter } from './line-splitter.ts';
import { targetOf, type JsonRequest, type MessageId } from './messages.ts';
import type { Outbox } from './outbox.ts';
import { auditPath, auditTarget, DENIED_BY_HEADER, deniedByRule, requestInfo, type AuditDenyRule } from '@pipeops/tunnel-protocol';
import { encodeBody, headerMap, isJsonType, kubernetesStatus } from './response-body.ts';

/** Header carrying the gateway's request id, upstream and back to the runner. */
export const REQUEST_ID_HEADER = 'x-pipeops-request-id';

/** Request headers the runner may not set: its credentials (the agent's are used upstream), the target's host, and framing the gateway computes. */
const DROPPED_REQUEST_HEADERS = new Set(['authorization', 'host', 'content-length', 'expect', REQUEST_ID_HEADER]);

/** What an exchange needs from its socket. */
export interface ExchangeContext {
  deps: ResolvedJsonProtocolDeps;
  runnerId: string;
  cluster: string;
  outbox: Outbox;
  logger: Logger;
}

/** How an exchange ended, for the log line. */
export type ExchangeOutcome = 'ok' | 'cancelled' | 'closed' | 'error';

class HeadTimeout extends Error {}

/**
 * One runner request: a fresh stream to the agent carrying one HTTP/1.1
 * request, and the answer as JSON messages — one reply, or for `stream: true`
 * a head, a chunk per WATCH event / log line, then `done` (or `error`).
 * Failures before the response head are answered like the HTTP route, with a
 * Kubernetes `Status` reply (503 not connected, 504 no head in time, 502
 * otherwise); after the head, with `{"id","error"}`.
 */
export class Exchange {
  readonly id: MessageId;
  readonly requestId = randomUUID();
  readonly #ctx: ExchangeContext;
  readonly #req: JsonRequest;
  readonly #onDone: (ex: Exchange) => void;
  readonly #abort = new AbortController();
  readonly #started = performance.now();
  #finished = false;
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
  }

  /** True once the exchange sent its last message (or was cancelled). */
  get finished(): boolean { return this.#finished; }

  /** True while reading of the response is paused for a congested socket. */
  get paused(): boolean { return this.#unwait !== undefined; }

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
    const { deps, runnerId, cluster } = this.#ctx;
    const signal = this.#abort.signal;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; this.#abort.abort(new HeadTimeout()); }, deps.headTimeoutMs);
    let answer: Awaited<ReturnType<typeof requestOverStream>>;
    try {
      const stream = await openUnlessAborted(() => deps.openStream(cluster, { kind: 'http', requestId: this.requestId, runnerId, cluster }), signal);
      this.#stream = stream;
      stream.on('error', () => { /* surfaces through the request or the response */ });
      answer = await requestOverStream(stream, {
        method: this.#req.method, path: targetOf(this.#req), headers: this.#upstreamHeaders(), body: this.#req.body, signal,
      });
    } catch (err) {
      if (this.#finished) return;
      this.#replyPreHeadFailure(err, timedOut);
      return;
    } finally {
      clearTimeout(timer);
    }
    if (this.#finished) { answer.response.destroy(); if (answer.upgraded) answer.socket.destroy(); return; }
    if (answer.upgraded) {
      answer.socket.destroy();
      this.#status = 502;
      this.#reply(502, this.#statusHeaders(), kubernetesStatus(502, 'BadGateway', 'the agent switched protocols on a plain request'));
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

  #upstreamHeaders(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (const [name, values] of Object.entries(this.#req.headers)) {
      if (DROPPED_REQUEST_HEADERS.has(name) || HOP_BY_HOP_HEADERS.has(name) || name.startsWith('proxy-')) continue;
      out[name] = values.length === 1 ? values[0] as string : values;
    }
    if (this.#req.bodyIsJson && out['content-type'] === undefined) out['content-type'] = 'application/json';
    out[REQUEST_ID_HEADER] = this.requestId;
    return out;
  }

  #statusHeaders(): Record<string, string[]> {
    return { 'content-type': ['application/json'], [REQUEST_ID_HEADER]: [this.requestId] };
  }

  // Mirrors the HTTP route: not connected → 503, no head in time → 504, any other failure → 502.
  #replyPreHeadFailure(err: unknown, timedOut: boolean): void {
    const e = err as { status?: unknown; code?: unknown; message?: unknown };
    let status = 502;
    let reason = 'BadGateway';
    let message = `the tunnel stream failed: ${String(e.message ?? err)}`;
    if (timedOut || e.code === 'PT_ERR_MUX_OPEN_TIMEOUT') {
      status = 504; reason = 'Timeout';
      message = `the agent for cluster ${this.#ctx.cluster} did not answer within ${this.#ctx.deps.headTimeoutMs} ms`;
    } else if (e.status === 429) {
      // The runner's stream or rate limit (the gateway's opener): the same 429 as on the other routes.
      status = 429; reason = 'TooManyRequests'; message = String(e.message);
      const rule = (err as { rule?: unknown }).rule;
      if (rule === 'stream_limit' || rule === 'rate_limit') this.#rule = rule;
    } else if (e.status === 503) {
      status = 503; reason = 'ServiceUnavailable';
      message = e.code === 'PT_ERR_CLUSTER_NOT_CONNECTED' ? `cluster ${this.#ctx.cluster} is not connected` : String(e.message);
    }
    this.#status = status;
    this.#reply(status, this.#statusHeaders(), kubernetesStatus(status, reason, message));
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
    this.#readBody(res, (chunk) => {
      if (this.#bytes > this.#ctx.deps.maxResponseBytes) {
        this.#error('PT_ERR_JSON_RESPONSE_TOO_LARGE', `response body exceeds ${this.#ctx.deps.maxResponseBytes} bytes`);
        return;
      }
      chunks.push(chunk);
    }, () => {
      const { body, bodyEncoding } = encodeBody(Buffer.concat(chunks), res.headers['content-type']);
      this.#reply(this.#status, headers, body, bodyEncoding);
    });
  }

  /** Stream answer: head, then one chunk per line (parsed JSON for JSON types, else a string), then done. */
  #streamBody(res: IncomingMessage, headers: Record<string, string[]>): void {
    const json = isJsonType(res.headers['content-type']);
    const splitter = new LineSplitter(this.#ctx.deps.maxResponseBytes);
    this.#ctx.outbox.send({ id: this.id, status: this.#status, headers });
    const emit = (line: Buffer): boolean => {
      if (!json) { this.#ctx.outbox.send({ id: this.id, chunk: line.toString('utf8') }); return true; }
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
    this.#readBody(res, (chunk) => {
      const { lines, tooLong } = splitter.push(chunk);
      for (const line of lines) if (!emit(line)) return;
      if (tooLong) this.#error('PT_ERR_JSON_RESPONSE_TOO_LARGE', `a stream chunk exceeds ${this.#ctx.deps.maxResponseBytes} bytes`);
    }, () => {
      const last = splitter.end();
      if (last !== undefined && !emit(last)) return;
      this.#ctx.outbox.send({ id: this.id, done: true });
      this.#finish('ok');
    });
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
    res.on('end', () => { if (!this.#finished) guarded(onEnd); });
    res.on('error', () => { /* 'close' follows */ });
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
    if (outcome !== 'ok') {
      this.#abort.abort();
      this.#response?.destroy();
      this.#stream?.destroy();
    }
    const { deps, runnerId, cluster } = this.#ctx;
    const ms = performance.now() - this.#started;
    const method = this.#req.method;
    deps.audit.write({
      event: 'audit', side: 'gateway', time: new Date(Date.now() - ms).toISOString(), requestId: this.requestId, runnerId, cluster, route: 'ws-k8s',
      method, path: auditPath(this.#req.path), ...auditTarget(requestInfo(method, targetOf(this.#req))),
      status: this.#status === 0 ? null : this.#status, bytesIn: this.#req.body?.length ?? 0, bytesOut: this.#bytes, ms: Math.round(ms), upgraded: false,
      decision: this.#rule === undefined ? 'allowed' : 'denied', ...(this.#rule !== undefined ? { rule: this.#rule } : {}),
      outcome,
    }, this.#status >= 500 && this.#status !== 503 ? 'warn' : 'info');
    this.#onDone(this);
  }
}

/** `open()`, rejected with the signal's reason if it aborts first (a stream that arrives late is destroyed). */
async function openUnlessAborted(open: () => Promise<Duplex>, signal: AbortSignal): Promise<Duplex> {
  if (signal.aborted) throw signal.reason;
  const opening = open();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([opening, aborted]);
  } catch (err) {
    opening.then((s) => s.destroy(), () => {});
    throw err;
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}
