import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Client, Dispatcher, type buildConnector, errors } from 'undici';
import type { ReconnectOptions, ResumeOptions } from './config.ts';
import { ClientError } from './errors.ts';
import { prepareRequest } from './internal/request-head.ts';
import { StreamExchange } from './internal/stream-exchange.ts';
import { asSocket, expectPeerEnd } from './internal/stream-socket.ts';
import { fromLegacyHandler, isLegacyHandler } from './legacy-handler.ts';
import { headerOf, withoutHeader } from './resume/request-headers.ts';
import { planResume, RESUME_HEADER, resumeOff } from './resume/resume-plan.ts';
import { ResumingRequest, type ResumeDeps } from './resume/resuming-request.ts';

/** How {@link TunnelDispatcher} resumes WATCH and `logs -f` streams cut by a tunnel drop (see src/resume/). */
export interface DispatcherResumeOptions {
  resume: Required<ResumeOptions>;
  /** Backoff between resume attempts: the tunnel's reconnect `intervalMs` and `maxIntervalMs`. */
  reconnect: Pick<Required<ReconnectOptions>, 'intervalMs' | 'maxIntervalMs'>;
  logger?: Logger;
}

/** undici's InformationalError messages for a connection it is done with (not an abort). */
const GRACEFUL_ENDS = new Set(['reset', 'socket idle timeout']);

/**
 * undici ends a one-request connection with `destroy(InformationalError('reset'))`
 * once the response is complete; on a mux stream that would be an RST, which
 * the far side counts as a failed stream. After a complete exchange, end our
 * side (FIN) instead and read out what is left: the stream closes when the
 * peer's FIN arrives (or, `streamCloseTimeoutMs` later, is reset: see
 * expectPeerEnd). Aborts and errors
 * (any other error) still reset at once.
 *
 * Reading out is ours to do: undici's parser stops reading once it is done
 * (it thinks the socket gone), and its 'readable' listener keeps the stream
 * out of flowing mode, so `resume()` alone would never read a FIN that comes
 * later. Unread, that FIN never became 'end': the stream never closed, and
 * its undici Client never disconnected (at 64 requests in flight through
 * real processes, more than half of them were kept for ever).
 */
function gracefulReset<T extends Duplex>(stream: T): T {
  const destroy = stream.destroy.bind(stream);
  const readOut = (): void => {
    while (stream.read() !== null);
  };
  stream.destroy = (err?: Error): T => {
    const code = (err as { code?: unknown } | undefined)?.code;
    // undici also destroys with an InformationalError when the caller aborts ('aborted'): that one must reset,
    // or the far side serves on (a WATCH the runner left would stream into a drained void for ever).
    if (code === 'UND_ERR_INFO' && GRACEFUL_ENDS.has((err as Error).message) && !stream.destroyed && !stream.writableEnded) {
      stream.end();
      expectPeerEnd(stream);
      stream.on('readable', readOut);
      // Not now: undici is still inside its parser's callback.
      process.nextTick(readOut);
      return stream;
    }
    return destroy(err);
  };
  return stream;
}

/** The origin of `url` (a string or URL), or undefined when there is none or it does not parse. */
function originOf(url: unknown): string | undefined {
  if (url === undefined) return undefined;
  try {
    return new URL(String(url)).origin;
  } catch {
    return undefined;
  }
}

/**
 * An undici `Dispatcher` whose every connection is a fresh yamux stream of
 * the tunnel, for `fetch(url, { dispatcher })`, `request`, `stream`,
 * `pipeline`, `upgrade` and `connect` (`url` on {@link TunnelDispatcher.origin}).
 *
 * Why undici `Client`s with a custom `connect` and not a hand-written
 * `dispatch`: undici's own HTTP/1.1 client then does the HTTP work over the
 * stream — request bodies streamed with backpressure, chunked responses,
 * trailers, 1xx, upgrades (the stream itself is handed over as the socket),
 * aborts (destroying the socket = RST of the stream) — exactly as over TCP.
 *
 * One `Client` per request, each carrying one request on one stream (the
 * tunnel's contract), released when it disconnects. Not an undici `Agent`
 * with `maxRequestsPerClient: 1`: its pool scans every client it holds on
 * each dispatch, and with a client per request that scan cost a runner
 * ~0.5 ms of CPU per request at 64 in flight.
 *
 * Requests for any other origin are refused with `PT_ERR_CLIENT_ORIGIN`: the
 * dispatcher never dials anything but the tunnel.
 *
 * A WATCH or a `logs -f` with timestamps cut by a tunnel drop is resumed
 * (src/resume/resuming-request.ts) unless the request carries
 * `x-pipeops-resume: off`; that header is never sent upstream.
 */
export class TunnelDispatcher extends Dispatcher {
  /** The only origin served, e.g. `http://kubernetes.tunnel.invalid`. */
  readonly origin: string;
  readonly #open: (waitMs?: number) => Promise<Duplex>;
  readonly #connect: buildConnector.connector;
  readonly #clients = new Set<Client>();
  /** Exchanges whose stream is open (or opening), ended by close()/destroy(). */
  readonly #exchanges = new Set<StreamExchange>();
  /** The Host header of requests that name none: the origin's host. */
  readonly #host: string;
  readonly #idleWaiters: Array<() => void> = [];
  readonly #resume: ResumeDeps | undefined;
  readonly #resuming = new Set<ResumingRequest>();
  #closed = false;

  /**
   * `openStream(waitMs)` opens a tunnel stream, waiting up to `waitMs` (its
   * own default when undefined) for the tunnel. Without `resume`, nothing is
   * resumed.
   */
  constructor(origin: string, openStream: (waitMs?: number) => Promise<Duplex>, resume?: DispatcherResumeOptions) {
    super();
    const url = new URL(origin);
    this.origin = url.origin;
    this.#host = url.host;
    this.#open = openStream;
    this.#connect = this.#connector(undefined);
    this.#resume =
      resume === undefined || !resume.resume.enabled
        ? undefined
        : {
            dispatch: (options, handler, waitMs) => {
              this.#dispatchOnce(options, handler, waitMs);
            },
            maxWaitMs: resume.resume.maxWaitMs,
            intervalMs: resume.reconnect.intervalMs,
            maxIntervalMs: resume.reconnect.maxIntervalMs,
            logger: resume.logger ?? pino({ enabled: false }),
            done: (r) => this.#resuming.delete(r),
          };
  }

  #connector(waitMs: number | undefined): buildConnector.connector {
    return (_opts, callback) => {
      this.#open(waitMs).then(
        (stream) => callback(null, asSocket(gracefulReset(stream)) as unknown as Socket),
        (err: Error) => callback(err, null),
      );
    };
  }

  override dispatch(options: Dispatcher.DispatchOptions, given: Dispatcher.DispatchHandler): boolean {
    // Node's built-in fetch hands in a handler of undici's older API.
    const handler = isLegacyHandler(given) ? fromLegacyHandler(given) : given;
    // The origin as undici's own APIs pass it is this.origin itself: parsed only when it is not.
    const origin = options.origin === this.origin ? this.origin : originOf(options.origin);
    const refusal =
      origin !== this.origin
        ? new ClientError('PT_ERR_CLIENT_ORIGIN', `the tunnel dispatcher serves ${this.origin} only, not ${String(options.origin)}`)
        : this.#closed
          ? new ClientError('PT_ERR_CLIENT_CLOSED', 'the tunnel dispatcher is closed')
          : undefined;
    if (refusal !== undefined) {
      if (typeof handler.onResponseError === 'function') {
        handler.onResponseError(null as unknown as Dispatcher.DispatchController, refusal);
        return true;
      }
      throw refusal;
    }
    const flag = headerOf(options.headers, RESUME_HEADER);
    const upstream: Dispatcher.DispatchOptions = flag === undefined ? options : { ...options, headers: withoutHeader(options.headers, RESUME_HEADER) ?? null };
    const plan =
      this.#resume !== undefined && !resumeOff(flag) && (options.upgrade ?? null) === null && (options.body ?? null) === null
        ? planResume(upstream.method, upstream.path, headerOf(upstream.headers, 'accept'))
        : undefined;
    if (plan !== undefined && this.#resume !== undefined) {
      const request = new ResumingRequest(plan, upstream, handler, this.#resume);
      this.#resuming.add(request);
      request.start();
      return true;
    }
    return this.#dispatchOnce(upstream, handler, undefined);
  }

  /** One request on one new stream (whose opening may wait `waitMs` for the tunnel). */
  #dispatchOnce(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, waitMs: number | undefined): boolean {
    if (this.#closed) {
      handler.onResponseError?.(null as unknown as Dispatcher.DispatchController, new ClientError('PT_ERR_CLIENT_CLOSED', 'the tunnel dispatcher is closed'));
      return true;
    }
    // A plain request is written and read here (internal/stream-exchange.ts); upgrades, CONNECT and
    // bodies of other kinds (FormData, Blob, iterables) go through an undici Client of their own.
    const prepared = prepareRequest(options, this.#host);
    if (prepared !== undefined) {
      const exchange = new StreamExchange(handler, prepared, options);
      this.#exchanges.add(exchange);
      exchange.start(() =>
        this.#open(waitMs).then(
          (stream) => {
            stream.once('close', () => this.#forget(exchange));
            return stream;
          },
          (err: unknown) => {
            this.#forget(exchange);
            throw err;
          },
        ),
      );
      return true;
    }
    const connect = waitMs === undefined ? this.#connect : this.#connector(waitMs);
    const client = new Client(this.origin, { connect, pipelining: 1, maxRequestsPerClient: 1 });
    this.#clients.add(client);
    const release = (): void => {
      this.#clients.delete(client);
    };
    // After its one request undici drops the connection ('disconnect'; also after an upgrade hands the
    // stream over), or the stream could not be opened ('connectionError'): the client is done either way,
    // with no socket, timer or request left, and is simply forgotten. (client.destroy() would build a
    // ClientDestroyedError, stack trace included, for nothing: ~10 µs of a runner's CPU per request.)
    client.once('disconnect', release);
    client.once('connectionError', release);
    return client.dispatch(options, handler);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    this.#cancelResuming();
    const done = Promise.all([...[...this.#clients].map((c) => c.close().catch(() => {})), this.#whenNoExchange()]).then(() => {});
    if (callback === undefined) return done;
    void done.then(callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    this.#closed = true;
    this.#cancelResuming();
    const err = typeof errOrCallback === 'function' ? null : (errOrCallback ?? null);
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const clients = [...this.#clients];
    this.#clients.clear();
    for (const exchange of [...this.#exchanges]) exchange.abort(err ?? new errors.ClientDestroyedError());
    const done = Promise.all([...clients.map((c) => c.destroy(err).catch(() => {})), this.#whenNoExchange()]).then(() => {});
    if (cb === undefined) return done;
    void done.then(cb);
  }

  /** Drops a finished exchange; the last one out wakes close(). */
  #forget(exchange: StreamExchange): void {
    this.#exchanges.delete(exchange);
    if (this.#exchanges.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /** Resolves once no exchange has a stream open or opening. */
  #whenNoExchange(): Promise<void> {
    if (this.#exchanges.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Requests waiting to resume end now, with the error that cut them. */
  #cancelResuming(): void {
    const closed = new ClientError('PT_ERR_CLIENT_CLOSED', 'the tunnel dispatcher is closed');
    for (const r of [...this.#resuming]) r.cancel(closed);
  }
}
