import type { Logger } from 'pino';
import type WebSocket from 'ws';
import type { ResolvedJsonProtocolDeps } from './config.ts';
import { jsonProtocolErrorCodes, type JsonProtocolErrorCode } from './errors.ts';
import { Exchange } from '../forward/ws-k8s-route.ts';
import type { RunnerLimits } from '../runner-limits.ts';
import { parseMessage, type MessageId } from './messages.ts';
import { Outbox } from './outbox.ts';

/** Who is on the other end of a runner socket (the gateway authenticated it). */
export interface RunnerContext {
  runnerId: string;
  cluster: string;
  /** The runner's limits now, read for each request (a tokens reload may change them). Default: none apply. */
  limits?: () => Readonly<RunnerLimits> | undefined;
}

/**
 * One runner's WebSocket: parses each text message, runs requests
 * concurrently (one {@link Exchange} each), routes cancels, and answers bad
 * input with an error for that id without touching anything else. The socket
 * closing cancels every request still in flight.
 */
export class JsonConnection {
  readonly #ws: WebSocket;
  readonly #ctx: RunnerContext;
  readonly #deps: ResolvedJsonProtocolDeps;
  readonly #log: Logger;
  readonly #outbox: Outbox;
  readonly #inFlight = new Map<string, Exchange>();
  /** Resolves when the socket has closed and every request was cancelled. */
  readonly closed: Promise<void>;

  constructor(ws: WebSocket, ctx: RunnerContext, deps: ResolvedJsonProtocolDeps) {
    this.#ws = ws;
    this.#ctx = ctx;
    this.#deps = deps;
    this.#log = deps.logger.child({ runnerId: ctx.runnerId, cluster: ctx.cluster });
    this.#outbox = new Outbox(ws, deps.maxBufferedBytes);
    addCloseReasons(ws, deps.maxMessageBytes);
    this.closed = new Promise((resolve) => {
      ws.once('close', (code: number) => {
        this.#log.debug({ event: 'json_socket_closed', code, inFlight: this.#inFlight.size }, 'json protocol socket closed');
        this.#cancelAll();
        resolve();
      });
    });
    ws.on('error', (err: Error & { code?: string }) => {
      this.#log.debug({ event: 'json_socket_error', code: err.code, message: err.message }, 'json protocol socket error');
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      // Anything thrown here would escape ws's socket handler and end the process: it ends this message only.
      try {
        this.#onMessage(data, isBinary);
      } catch (err) {
        this.#log.error({ event: 'json_message_failed', err }, 'json protocol message handling failed');
        this.#outbox.send({ id: null, error: { code: 'PT_ERR_INTERNAL', message: 'internal error' } });
      }
    });
    this.#startHeartbeat();
    this.#log.debug({ event: 'json_socket_open' }, 'json protocol socket open');
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Requests whose response reading is paused for this socket's backpressure. */
  get paused(): number {
    let n = 0;
    for (const ex of this.#inFlight.values()) if (ex.paused) n++;
    return n;
  }

  /** Bytes queued towards the runner. */
  get bufferedAmount(): number {
    return this.#outbox.bufferedAmount;
  }

  /** Cancels everything and closes the socket with `code`; terminates it if the closing handshake does not finish within `timeoutMs`. */
  async close(code: number, reason: string, timeoutMs: number): Promise<void> {
    this.#cancelAll();
    this.#ws.close(code, reason);
    const timer = setTimeout(() => this.#ws.terminate(), timeoutMs).unref();
    await this.closed;
    clearTimeout(timer);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.#sendError(null, 'PT_ERR_JSON_BINARY_FRAME');
      return;
    }
    const parsed = parseMessage(data.toString('utf8'));
    switch (parsed.kind) {
      case 'invalid':
        this.#sendError(parsed.id, parsed.code, parsed.message);
        return;
      case 'cancel': {
        const ex = this.#inFlight.get(keyOf(parsed.id));
        if (ex === undefined) {
          this.#sendError(parsed.id, 'PT_ERR_JSON_UNKNOWN_ID', `no request with id ${JSON.stringify(parsed.id)} is in flight`);
          return;
        }
        ex.cancel('cancelled');
        return;
      }
      case 'request': {
        const key = keyOf(parsed.request.id);
        if (this.#inFlight.has(key)) {
          this.#sendError(parsed.request.id, 'PT_ERR_JSON_DUPLICATE_ID', `a request with id ${JSON.stringify(parsed.request.id)} is already in flight`);
          return;
        }
        if (this.#inFlight.size >= this.#deps.maxConcurrentRequests) {
          this.#sendError(
            parsed.request.id,
            'PT_ERR_JSON_TOO_MANY_REQUESTS',
            `at most ${this.#deps.maxConcurrentRequests} requests may be in flight on one socket`,
          );
          return;
        }
        const ex = new Exchange(
          {
            deps: this.#deps,
            runnerId: this.#ctx.runnerId,
            cluster: this.#ctx.cluster,
            limits: this.#ctx.limits ?? noLimits,
            outbox: this.#outbox,
            logger: this.#log,
          },
          parsed.request,
          (done) => {
            if (this.#inFlight.get(key) === done) this.#inFlight.delete(key);
          },
        );
        this.#inFlight.set(key, ex);
        ex.start();
        return;
      }
    }
  }

  #sendError(id: MessageId | null, code: JsonProtocolErrorCode, message: string = jsonProtocolErrorCodes[code].message): void {
    this.#log.debug({ event: 'json_message_refused', code }, 'json protocol message refused');
    this.#outbox.send({ id, error: { code, message } });
  }

  // A runner whose connection died silently (no FIN, no RST) would keep its
  // watches running upstream forever; a missed pong ends it.
  #startHeartbeat(): void {
    let alive = true;
    this.#ws.on('pong', () => {
      alive = true;
    });
    const timer = setInterval(() => {
      if (!alive) {
        this.#log.info({ event: 'json_socket_timeout', inFlight: this.#inFlight.size }, 'json protocol runner did not answer a ping; terminating');
        this.#ws.terminate();
        return;
      }
      alive = false;
      this.#ws.ping();
    }, this.#deps.pingIntervalMs).unref();
    this.#ws.once('close', () => clearInterval(timer));
  }

  #cancelAll(): void {
    for (const ex of [...this.#inFlight.values()]) ex.cancel('closed');
    this.#inFlight.clear();
    this.#outbox.clear();
  }
}

function noLimits(): undefined {
  return undefined;
}

// Distinguishes the string "1" from the number 1.
function keyOf(id: MessageId): string {
  return `${typeof id}:${String(id)}`;
}

// ws closes an oversize message's socket with 1009 but no reason
// (receiverOnError calls `close(code)`). Give that close a reason the
// runner can read, without changing any other close.
function addCloseReasons(ws: WebSocket, maxMessageBytes: number): void {
  const close = ws.close.bind(ws);
  ws.close = (code?: number, reason?: string | Buffer): void => {
    if (code === 1009 && reason === undefined) close(code, `message exceeds the ${maxMessageBytes}-byte limit`);
    else close(code, reason);
  };
}
