import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { ClientError } from './errors.ts';
import { asSocket } from './internal/stream-socket.ts';

/**
 * undici ends a one-request connection with `destroy(InformationalError('reset'))`
 * once the response is complete; on a mux stream that would be an RST, which
 * the far side counts as a failed stream. After a complete exchange, end our
 * side (FIN) instead and drain what is left: the stream closes when the
 * peer's FIN arrives (or the mux close timeout resets it). Aborts and errors
 * (any other error) still reset at once.
 */
function gracefulReset<T extends Duplex>(stream: T): T {
  const destroy = stream.destroy.bind(stream);
  stream.destroy = (err?: Error): T => {
    const code = (err as { code?: unknown } | undefined)?.code;
    if (code === 'UND_ERR_INFO' && !stream.destroyed && !stream.writableEnded) {
      stream.end();
      stream.resume();
      return stream;
    }
    return destroy(err);
  };
  return stream;
}

/**
 * An undici `Dispatcher` whose every connection is a fresh yamux stream of
 * the tunnel, for `fetch(url, { dispatcher })`, `request`, `stream`,
 * `pipeline`, `upgrade` and `connect` (`url` on {@link TunnelDispatcher.origin}).
 *
 * Why an `Agent` with a custom `connect` and not a hand-written `dispatch`:
 * undici's own HTTP/1.1 client then does the HTTP work over the stream —
 * request bodies streamed with backpressure, chunked responses, trailers,
 * 1xx, upgrades (the stream itself is handed over as the socket), aborts
 * (destroying the socket = RST of the stream) — exactly as over TCP.
 * `maxRequestsPerClient: 1` makes each stream carry one request (the
 * tunnel's contract), so there is no keep-alive reuse of a stream.
 *
 * Requests for any other origin are refused with `PT_ERR_CLIENT_ORIGIN`: the
 * dispatcher never dials anything but the tunnel.
 */
export class TunnelDispatcher extends Agent {
  /** The only origin served, e.g. `http://kubernetes.tunnel.invalid`. */
  readonly origin: string;

  constructor(origin: string, openStream: () => Promise<Duplex>) {
    super({
      maxRequestsPerClient: 1,
      pipelining: 1,
      connect: (_opts, callback) => {
        openStream().then(
          (stream) => callback(null, asSocket(gracefulReset(stream)) as unknown as Socket),
          (err: Error) => callback(err, null),
        );
      },
    });
    this.origin = new URL(origin).origin;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    let origin: string | undefined;
    try {
      origin = options.origin === undefined ? undefined : new URL(String(options.origin)).origin;
    } catch {
      origin = undefined;
    }
    if (origin !== this.origin) {
      const err = new ClientError('PT_ERR_CLIENT_ORIGIN', `the tunnel dispatcher serves ${this.origin} only, not ${String(options.origin)}`);
      if (typeof handler.onResponseError === 'function') {
        handler.onResponseError(null as unknown as Dispatcher.DispatchController, err);
        return true;
      }
      throw err;
    }
    return super.dispatch(options, handler);
  }
}
