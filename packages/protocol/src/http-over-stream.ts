import type { IncomingMessage, OutgoingHttpHeaders, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { abortReason } from './exchange-open.ts';
import { nodeHttp } from './node-http.ts';

/** One HTTP/1.1 request for {@link requestOverStream}. */
export interface StreamRequest {
  method: string;
  /** Origin-form target, e.g. `/api/v1/pods?watch=1`. */
  path: string;
  /** Repeated headers as arrays. A missing `host` becomes `Host: localhost`. */
  headers: Record<string, string | string[]>;
  /** Streamed with backpressure; a Buffer is sent with a Content-Length. */
  body?: Readable | Buffer | undefined;
  /** Aborting destroys the stream (a mux stream sends RST), also after the head arrived. */
  signal?: AbortSignal | undefined;
}

/** The answer of {@link requestOverStream}. */
export type StreamResponse = { upgraded: false; response: IncomingMessage } | { upgraded: true; response: IncomingMessage; socket: Duplex; head: Buffer };

/**
 * Sends one HTTP/1.1 request over `stream`, which serves as the connection
 * and is used once (`Connection: close`; after the response the stream is
 * ended, a mux stream sends FIN). Resolves on the response head: the body
 * streams from `response` (trailers on `response.trailers`), or, for a
 * `101`, raw bytes flow on `socket` (after `head`). Rejects when the stream
 * fails before a head arrives.
 */
export function requestOverStream(stream: Duplex, req: StreamRequest): Promise<StreamResponse> {
  return new Promise<StreamResponse>((resolve, reject) => {
    const signal = req.signal;
    if (signal?.aborted) {
      stream.destroy();
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      cr.destroy();
      stream.destroy();
      reject(abortReason(signal as AbortSignal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.once('close', () => signal?.removeEventListener('abort', onAbort));
    const cr = nodeHttp.request({
      // No `agent` at all: with `agent: false` Node builds a fresh Agent that ignores createConnection.
      createConnection: () => stream as Socket,
      method: req.method,
      path: req.path,
      headers: req.headers as OutgoingHttpHeaders,
    });
    cr.on('response', (response: IncomingMessage) => resolve({ upgraded: false, response }));
    cr.on('upgrade', (response: IncomingMessage, socket: Duplex, head: Buffer) => resolve({ upgraded: true, response, socket, head }));
    // After the head, failures surface on the response (or the upgraded socket); before it, they reject.
    cr.on('error', (err) => {
      stream.destroy();
      reject(err);
    });
    const body = req.body;
    if (body === undefined) cr.end();
    else if (Buffer.isBuffer(body)) cr.end(body);
    else
      pipeline(body, cr, () => {
        /* errors destroy both ends; reported through 'error' above */
      });
  });
}

/**
 * Serves HTTP requests arriving on `stream` with `server`'s `'request'` /
 * `'upgrade'` handlers, without a listening socket (the stream is announced
 * as a `'connection'`). Half-open, as the agent reads its streams: a request
 * sent with its FIN (relayPlain ends a bodyless request's stream with its
 * head) is still answered; Node's server would otherwise end its side at the
 * FIN and the answer would be lost.
 */
export function serveHttpOverStream(server: Server, stream: Duplex): void {
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.emit('connection', stream);
}
