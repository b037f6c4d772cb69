import type { Duplex } from 'node:stream';
import type { SessionOptions } from './config.ts';
import { MuxError } from './errors.ts';
import { Session } from './session.ts';

/**
 * Wires a {@link Session} to a transport Duplex (TCP socket, TLS socket,
 * `ws` `createWebSocketStream`…) with backpressure both ways:
 * transport → session always flows (inbound is bounded by stream windows);
 * session → transport pauses while `transport.write()` returns false.
 *
 * Transport end, error or close destroys the session with MuxError
 * `PT_ERR_MUX_TRANSPORT_CLOSED` (cause kept). When the session's output ends
 * (graceful close) the transport is ended; when the session closes, the
 * transport is ended and, if still open after `goAwayTimeoutMs`, destroyed.
 * No `'error'` listener is required on either side.
 */
export function createSession(transport: Duplex, options: SessionOptions): Session {
  const session = new Session(options);
  const fallbackMs = options.goAwayTimeoutMs ?? 5_000;

  const onTransportData = (chunk: Buffer): void => {
    if (!session.write(chunk)) {
      transport.pause();
      session.once('drain', () => transport.resume());
    }
  };
  const transportGone = (cause?: unknown): void => {
    if (session.destroyed) return;
    session.destroy(new MuxError('PT_ERR_MUX_TRANSPORT_CLOSED', 'transport closed', cause === undefined ? undefined : { cause }));
  };
  const onTransportError = (err: Error): void => transportGone(err);
  const onTransportEnd = (): void => transportGone();
  const onTransportClose = (): void => transportGone();

  // Everything the session produces until the event loop next checks for
  // I/O (a data frame is two chunks, header and payload; a response is its
  // head, body and FIN, produced over several ticks of one I/O callback)
  // reaches the transport as one writev: one system call, one TLS record,
  // one WebSocket frame, instead of one per chunk.
  let corked = false;
  const uncork = (): void => {
    corked = false;
    transport.uncork();
  };
  const onSessionData = (chunk: Buffer): void => {
    if (transport.destroyed || transport.writableEnded) return;
    if (!corked) {
      corked = true;
      transport.cork();
      setImmediate(uncork);
    }
    if (!transport.write(chunk)) {
      session.pause();
      transport.once('drain', () => session.resume());
    }
  };
  const endTransport = (): void => {
    if (!transport.destroyed && !transport.writableEnded) transport.end();
  };
  const onSessionClose = (): void => {
    transport.off('data', onTransportData);
    endTransport();
    if (!transport.destroyed) {
      const t = setTimeout(() => transport.destroy(), fallbackMs).unref();
      transport.once('close', () => clearTimeout(t));
    }
  };

  transport.on('data', onTransportData);
  transport.on('error', onTransportError);
  transport.on('end', onTransportEnd);
  transport.on('close', onTransportClose);
  session.on('data', onSessionData);
  session.on('end', endTransport);
  session.on('close', onSessionClose);
  return session;
}
