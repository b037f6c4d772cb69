import { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { TunnelError } from './errors.ts';
import { streamFraming } from './websocket-stream-framing.ts';

/** Options of {@link websocketDuplex}. */
export interface WebSocketDuplexOptions {
  /** Readable side's buffer, in bytes, above which the socket is paused. Default 262_144 (256 KiB). */
  readableHighWaterMarkBytes?: number;
  /** Writable side's buffer, in bytes, above which write() returns false. Default 262_144 (256 KiB). */
  writableHighWaterMarkBytes?: number;
  /**
   * `auto` (default): take the data path over from `ws` when the socket is open
   * and untouched (`framing: 'stream'` on the result), else ws's messages;
   * `message`: always ws's messages (one per write, assembled on receipt).
   */
  framing?: 'auto' | 'message';
}

const DEFAULT_HWM_BYTES = 256 * 1024;

/**
 * Wraps a `ws` WebSocket as a byte `Duplex`.
 *
 * - Binary frames only: every write is sent as one binary message; a text
 *   message from the peer destroys the Duplex (`PT_ERR_WS_TEXT_FRAME`, close 1003).
 * - Backpressure both ways: when `push()` returns false the underlying socket
 *   is paused (`ws.pause()`) until the consumer reads again; a write's callback
 *   waits for `ws.send`'s callback, i.e. for the bytes to reach the socket.
 * - `end()` → `ws.close(1000)`; `destroy()` → `ws.terminate()`.
 * - The peer's close (any code) ends the readable side; a `ws` 'error'
 *   destroys the Duplex with that error.
 *
 * Works for a socket that is still CONNECTING: writes wait for 'open'.
 *
 * On an open socket whose `ws` receiver has read nothing yet (the usual
 * case: right after the handshake) the Duplex takes the data path over
 * from `ws` ({@link streamFraming}): binary payload bytes go from the
 * socket's chunks to the consumer as views, never assembled into messages,
 * and each write (or corked batch of writes) leaves as one binary frame
 * whose header and payloads are written to the socket as they are. `ws`
 * keeps the handshake, control frames (close, ping, pong) and the close
 * handshake. `framing` on the returned Duplex says which path it took.
 */
export function websocketDuplex(ws: WebSocket, options: WebSocketDuplexOptions = {}): Duplex & { framing: 'stream' | 'message' } {
  const fast =
    options.framing === 'message'
      ? undefined
      : streamFraming(ws, options.readableHighWaterMarkBytes ?? DEFAULT_HWM_BYTES, options.writableHighWaterMarkBytes ?? DEFAULT_HWM_BYTES);
  if (fast !== undefined) return Object.assign(fast, { framing: 'stream' as const });
  ws.binaryType = 'nodebuffer';
  let wsClosed = ws.readyState === WebSocket.CLOSED;

  const sendOne = (chunk: Buffer, cb: (err?: Error | null) => void): void => {
    if (ws.readyState === WebSocket.CONNECTING) {
      const onOpen = (): void => {
        ws.off('close', onClose);
        sendOne(chunk, cb);
      };
      const onClose = (): void => {
        ws.off('open', onOpen);
        cb(closedError());
      };
      ws.once('open', onOpen);
      ws.once('close', onClose);
      return;
    }
    if (ws.readyState !== WebSocket.OPEN) {
      cb(closedError());
      return;
    }
    corkForThisTick();
    ws.send(chunk, { binary: true }, (err) => cb(err ?? null));
  };

  // Every message sent in one tick leaves in one socket write: a small
  // request or response is several mux frames (open, data, FIN, window
  // updates) produced together, and each message written on its own cost a
  // TLS record and a system call. Messages stay one per frame.
  let corked: { uncork(): void } | undefined;
  const corkForThisTick = (): void => {
    if (corked !== undefined) return;
    const socket = (ws as unknown as { _socket?: { cork(): void; uncork(): void; destroyed?: boolean } })._socket;
    if (socket === undefined || socket.destroyed === true) return;
    socket.cork();
    corked = socket;
    process.nextTick(() => {
      corked = undefined;
      socket.uncork();
    });
  };

  const duplex = new Duplex({
    allowHalfOpen: false,
    readableHighWaterMark: options.readableHighWaterMarkBytes ?? DEFAULT_HWM_BYTES,
    writableHighWaterMark: options.writableHighWaterMarkBytes ?? DEFAULT_HWM_BYTES,
    read() {
      if (ws.isPaused) ws.resume(); // no-op unless OPEN/CLOSING
    },
    write(chunk: Buffer, _enc, cb) {
      sendOne(chunk, cb);
    },
    writev(chunks, cb) {
      // Send every chunk as its own message; complete when the last one is flushed.
      let pending = chunks.length;
      let failed = false;
      for (const { chunk } of chunks) {
        sendOne(chunk as Buffer, (err) => {
          if (failed) return;
          if (err) {
            failed = true;
            cb(err);
            return;
          }
          if (--pending === 0) cb();
        });
      }
    },
    final(cb) {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
      cb();
    },
    destroy(err, cb) {
      if (!wsClosed) ws.terminate();
      cb(err);
    },
  });

  const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
    if (!isBinary) {
      if (ws.readyState === WebSocket.OPEN) ws.close(1003, 'binary frames only');
      duplex.destroy(new TunnelError('PT_ERR_WS_TEXT_FRAME'));
      return;
    }
    if (duplex.destroyed) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!duplex.push(buf)) ws.pause(); // no-op unless OPEN/CLOSING
  };
  const onClose = (): void => {
    wsClosed = true;
    if (!duplex.destroyed) duplex.push(null);
  };
  const onError = (err: Error): void => {
    duplex.destroy(err);
  };
  ws.on('message', onMessage);
  ws.on('close', onClose);
  ws.on('error', onError);
  duplex.once('close', () => {
    ws.off('message', onMessage);
    // Keep a no-op error listener: a late ws 'error' must not crash the process.
    ws.off('error', onError);
    ws.on('error', noop);
  });
  if (wsClosed) duplex.push(null);
  return Object.assign(duplex, { framing: 'message' as const });
}

function closedError(): TunnelError {
  return new TunnelError('PT_ERR_WS_CLOSED', 'WebSocket is not open');
}

function noop(): void {}
