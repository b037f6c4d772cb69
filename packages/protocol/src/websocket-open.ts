import type { IncomingMessage } from 'node:http';
import type WebSocket from 'ws';

/** How {@link openWebSocket} turns each way a dial can fail into the caller's error. */
export interface OpenWebSocketOptions<E extends Error> {
  /** Aborting it rejects with `aborted()`. */
  signal: AbortSignal;
  aborted(): E;
  /** An `'error'` before the socket opened (refused, reset, TLS, ws's own handshake timeout…). */
  failed(err: Error): E;
  /** An answer to the upgrade other than 101; its body is drained first. */
  refused(res: IncomingMessage): E;
  /** An overall deadline, ms, rejecting with `error()`. Absent → none beyond ws's `handshakeTimeout`. */
  deadline?: { ms: number; error(): E };
}

/**
 * Creates a client WebSocket with `create()` and resolves with it once open,
 * or rejects (once) with the error the options map its failure to; a socket
 * that failed is terminated, keeping an `'error'` listener for that.
 */
export function openWebSocket<E extends Error>(create: () => WebSocket, o: OpenWebSocketOptions<E>): Promise<WebSocket> {
  return new Promise<WebSocket>((resolve, reject) => {
    let settled = false;
    const ws = create();
    const { deadline } = o;
    const timer = deadline === undefined ? undefined : setTimeout(() => finish(deadline.error()), deadline.ms);
    timer?.unref();
    const onAbort = (): void => finish(o.aborted());
    const onOpen = (): void => finish(undefined);
    const onError = (err: Error): void => finish(o.failed(err));
    const onResponse = (_req: unknown, res: IncomingMessage): void => {
      res.resume();
      finish(o.refused(res));
    };
    function finish(err: E | undefined): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal.removeEventListener('abort', onAbort);
      ws.off('open', onOpen);
      ws.off('error', onError);
      ws.off('unexpected-response', onResponse);
      if (err === undefined) {
        resolve(ws);
        return;
      }
      // terminate() on a connecting socket emits 'error': keep a listener.
      ws.on('error', () => {});
      ws.terminate();
      reject(err);
    }
    o.signal.addEventListener('abort', onAbort, { once: true });
    ws.on('open', onOpen);
    ws.on('error', onError);
    ws.on('unexpected-response', onResponse);
  });
}
