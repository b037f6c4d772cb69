import { randomFillSync } from 'node:crypto';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { TunnelError } from './errors.ts';
import { DIRECT_TRANSPORT, type DirectTransport } from '@pipeops/tunnel-mux';
import { encodeWsHeader, unmask, writeWsHeader, wsHeaderBytes, WsFrameReader, WsOpcode } from './websocket-frames.ts';

/** The parts of a `ws` WebSocket (8.x) the data path is taken over from. */
interface WsInternals {
  _socket?: Socket | null;
  _receiver?: { _bufferedBytes?: unknown; _state?: unknown; write?: (chunk: Buffer) => boolean };
  _isServer?: unknown;
}

/** `ws`'s receiver state before it has read any frame byte (GET_INFO). */
const RECEIVER_IDLE = 0;
const ZERO_KEY = Buffer.alloc(4);
/** A frame whose payload is in several pieces and at most this long is copied into one buffer with its header. */
const SMALL_FRAME_BYTES = 4096;

/**
 * Takes the data path of an open `ws` WebSocket over, as a byte Duplex
 * (see `websocketDuplex`), or returns undefined, changing nothing, when it
 * cannot do so safely: the socket is not open, an extension was negotiated,
 * `ws`'s receiver has already read bytes, or `ws`'s internals are not the
 * ones this was written against.
 *
 * - In: the socket's chunks go through {@link WsFrameReader}; binary payload
 *   pieces are pushed as views (unmasked in place when a peer used a
 *   non-zero key), whole control frames go to `ws`'s own receiver, which
 *   answers pings and runs the close handshake as before. A text frame is
 *   answered with close 1003 and destroys the Duplex (`PT_ERR_WS_TEXT_FRAME`);
 *   a protocol violation destroys it with `PT_ERR_WS_PROTOCOL`.
 * - Out: each write, or each batch of corked writes, is one binary frame:
 *   its header, then the payload buffers as given, in one corked socket
 *   write. A client masks (RFC 6455 §5.3) with the all-zero key inside TLS
 *   (see `tunnelWebSocketClientOptions` for why) and with a random key,
 *   on a copy, over plain TCP.
 * - Backpressure: a push refused pauses the socket until the consumer
 *   reads; a write completes at once unless the socket needs draining.
 */
export function streamFraming(ws: WebSocket, readableHighWaterMark: number, writableHighWaterMark: number): Duplex | undefined {
  const w = ws as unknown as WsInternals;
  const socket = w._socket;
  const receiver = w._receiver;
  if (ws.readyState !== WebSocket.OPEN || ws.extensions !== '' || socket == null || receiver === undefined) return undefined;
  if (receiver._bufferedBytes !== 0 || receiver._state !== RECEIVER_IDLE || typeof receiver.write !== 'function') return undefined;
  if (typeof w._isServer !== 'boolean') return undefined;
  const dataListeners = socket.listeners('data');
  if (dataListeners.length !== 1) return undefined;
  const wsOnData = dataListeners[0] as (chunk: Buffer) => void;
  const toReceiver = receiver.write.bind(receiver);
  const isServer = w._isServer;
  const insideTls = (socket as Socket & { encrypted?: boolean }).encrypted === true;

  /** Sends `chunks` as one binary frame; false when the socket is not open (nothing sent). */
  const sendFrame = (chunks: readonly Buffer[]): boolean => {
    if (ws.readyState !== WebSocket.OPEN || socket.destroyed) return false;
    let total = 0;
    for (const c of chunks) total += c.length;
    let payload = chunks;
    let key: Buffer | undefined;
    if (!isServer) {
      key = ZERO_KEY;
      if (!insideTls) {
        key = randomFillSync(Buffer.allocUnsafe(4));
        const masked = Buffer.concat(chunks as Buffer[], total);
        unmask(masked, key, 0);
        payload = [masked];
      }
    }
    if (payload.length > 1 && total <= SMALL_FRAME_BYTES) {
      // Header and payload copied into one buffer: one socket write instead of a corked writev of many pieces.
      const frame = Buffer.allocUnsafe(wsHeaderBytes(total, key) + total);
      let at = writeWsHeader(frame, WsOpcode.binary, total, key);
      for (const c of payload) at += c.copy(frame, at);
      socket.write(frame);
      return true;
    }
    socket.cork();
    socket.write(encodeWsHeader(WsOpcode.binary, total, key));
    for (const c of payload) socket.write(c);
    socket.uncork();
    return true;
  };
  const sent = (ok: boolean, cb: (err?: Error | null) => void): void => {
    if (!ok) cb(new TunnelError('PT_ERR_WS_CLOSED', 'WebSocket is not open'));
    else if (socket.writableNeedDrain) socket.once('drain', () => cb());
    else cb();
  };

  const duplex = new Duplex({
    allowHalfOpen: false,
    readableHighWaterMark,
    writableHighWaterMark,
    read() {
      if (socket.isPaused()) socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      sent(sendFrame([chunk]), cb);
    },
    writev(chunks, cb) {
      sent(sendFrame(chunks.map((c) => c.chunk as Buffer)), cb);
    },
    final(cb) {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      cb();
    },
    destroy(err, cb) {
      detach();
      if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
      cb(err);
    },
  });

  // A mux session's way past the Duplex (createSession): payload pieces go
  // to it as they are decoded, and each of its batches is one frame. A
  // batch waits for the socket only once the socket holds the Duplex's
  // high-water mark, as writes through the Duplex would.
  let consumer: ((piece: Buffer) => void) | undefined;
  const direct: DirectTransport = {
    receiveInto(receive) {
      consumer = receive;
      if (socket.isPaused()) socket.resume();
    },
    writeBatch(chunks, onDrain) {
      if (!sendFrame(chunks) || socket.writableLength < writableHighWaterMark) return true;
      socket.once('drain', onDrain);
      return false;
    },
  };
  Object.defineProperty(duplex, DIRECT_TRANSPORT, { value: direct });

  const reader = new WsFrameReader(isServer, {
    data(piece) {
      if (consumer !== undefined) consumer(piece);
      else if (!duplex.destroyed && !duplex.push(piece)) socket.pause();
    },
    control(raw) {
      toReceiver(raw);
    },
    text() {
      if (ws.readyState === WebSocket.OPEN) ws.close(1003, 'binary frames only');
      duplex.destroy(new TunnelError('PT_ERR_WS_TEXT_FRAME'));
    },
  });
  const onData = (chunk: Buffer): void => {
    try {
      reader.push(chunk);
    } catch (err) {
      duplex.destroy(err as Error);
    }
  };
  // ws, on the socket's close, feeds whatever a paused socket still holds to
  // its receiver; those bytes are ours (frames in flight): read them first.
  const onSocketClose = (): void => {
    const rest = socket.readableLength > 0 ? (socket.read() as Buffer | null) : null;
    if (rest !== null) onData(rest);
  };
  const onClose = (): void => {
    if (!duplex.destroyed) duplex.push(null);
  };
  const onError = (err: Error): void => {
    duplex.destroy(err);
  };
  function detach(): void {
    ws.off('close', onClose);
    ws.off('error', onError);
    ws.on('error', noop); // a late ws 'error' must not crash the process
  }

  socket.removeListener('data', wsOnData);
  socket.on('data', onData);
  socket.prependListener('close', onSocketClose);
  ws.on('close', onClose);
  ws.on('error', onError);
  return duplex;
}

function noop(): void {}
