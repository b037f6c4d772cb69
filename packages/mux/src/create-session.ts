import type { Duplex } from 'node:stream';
import type { SessionOptions } from './config.ts';
import { directTransportOf, type DirectTransport } from './direct-transport.ts';
import { MuxError } from './errors.ts';
import { Session } from './session.ts';

/**
 * Wires a {@link Session} to a transport Duplex (TCP socket, TLS socket,
 * `ws` `createWebSocketStream`…) with backpressure both ways:
 * transport → session always flows (inbound is bounded by stream windows);
 * session → transport stops while the transport wants to drain. Neither
 * way passes through the session's own Writable or Readable side: bytes in
 * go to its decoder, frames out are gathered per event-loop turn and
 * written as one batch (see {@link DirectTransport}).
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

  // Decoding is synchronous and stream windows bound what it holds: the
  // transport's bytes go in as they come, with no Writable in between.
  const onTransportData = (chunk: Buffer): void => {
    session.receive(chunk);
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
  // reaches the transport as one batch: one system call, one TLS record,
  // one WebSocket frame, instead of one per chunk. A direct transport
  // (DirectTransport) takes the turn's chunks as one array; any other is
  // corked for the turn. A turn's output past the transport's
  // high-water mark leaves at once, so that its backpressure still holds
  // the session back.
  const direct = directTransportOf(transport);
  const batchLimit = transport.writableHighWaterMark;
  // Two arrays in turn: a batch is written synchronously, so its array is free again right after.
  let pending: Buffer[] = [];
  let spare: Buffer[] = [];
  let pendingBytes = 0;
  let flushQueued = false;
  // Backpressure: once the transport wants to drain, the session is told
  // to stop (the sink's false) until it has.
  let blocked = false;
  const drained = (): void => {
    if (!blocked) return;
    blocked = false;
    session.outputDrained();
  };
  const writePending = (): void => {
    flushQueued = false;
    if (pending.length === 0) return;
    const chunks = pending;
    pending = spare;
    pendingBytes = 0;
    if (!transport.destroyed && !transport.writableEnded) {
      if (direct !== undefined) {
        if (!direct.writeBatch(chunks, drained)) blocked = true;
      } else {
        transport.cork();
        let more = true;
        for (const c of chunks) more = transport.write(c);
        transport.uncork();
        if (!more) {
          blocked = true;
          transport.once('drain', drained);
        }
      }
    }
    chunks.length = 0;
    spare = chunks;
  };
  const onSessionOutput = (chunk: Buffer): boolean => {
    if (transport.destroyed || transport.writableEnded) return true;
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= batchLimit) writePending();
    else if (!flushQueued) {
      flushQueued = true;
      setImmediate(writePending);
    }
    return !blocked;
  };
  const endTransport = (): void => {
    // What the session produced this turn goes before the end.
    writePending();
    if (!transport.destroyed && !transport.writableEnded) transport.end();
  };
  const onSessionClose = (): void => {
    if (direct !== undefined) direct.receiveInto(ignore);
    else transport.off('data', onTransportData);
    endTransport();
    if (!transport.destroyed) {
      const t = setTimeout(() => transport.destroy(), fallbackMs).unref();
      transport.once('close', () => clearTimeout(t));
    }
  };

  if (direct !== undefined) {
    direct.receiveInto(onTransportData);
    // Flowing, so that its readable side's end is still emitted.
    transport.resume();
  } else {
    transport.on('data', onTransportData);
  }
  transport.on('error', onTransportError);
  transport.on('end', onTransportEnd);
  transport.on('close', onTransportClose);
  session.outputTo({ write: onSessionOutput });
  session.on('end', endTransport);
  session.on('close', onSessionClose);
  return session;
}

function ignore(): void {}
