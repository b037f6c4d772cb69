import type { Duplex } from 'node:stream';
import { Stream } from '@pipeops/tunnel-mux';

/** The `net.Socket` methods Node's http client, ws and undici may call on a connection. */
interface SocketShims {
  setNoDelay(noDelay?: boolean): unknown;
  setKeepAlive(enable?: boolean, initialDelay?: number): unknown;
  setTimeout(ms: number, cb?: () => void): unknown;
  ref(): unknown;
  unref(): unknown;
}

/**
 * Makes a mux stream usable where a `net.Socket` is expected (undici's
 * `connect`, an http.Agent's `createConnection`, ws after an upgrade): the
 * TCP-only knobs become no-ops — the stream is not a TCP connection, and the
 * session's keepalive already detects a dead peer. Idle timeouts
 * (`setTimeout(ms)` with ms > 0) are honoured with a timer reset by traffic.
 */
export function asSocket<T extends Duplex>(stream: T): T & SocketShims {
  const s = stream as T & Partial<SocketShims>;
  let idle: NodeJS.Timeout | undefined;
  let idleMs = 0;
  const arm = (): void => {
    if (idle !== undefined) idle.refresh();
  };
  s.setNoDelay ??= function setNoDelay() {
    return this;
  };
  s.setKeepAlive ??= function setKeepAlive() {
    return this;
  };
  s.ref ??= function ref() {
    return this;
  };
  s.unref ??= function unref() {
    return this;
  };
  s.setTimeout ??= function setTimeout(ms: number, cb?: () => void) {
    if (cb !== undefined) stream.once('timeout', cb);
    if (idle !== undefined) clearTimeout(idle);
    idle = undefined;
    idleMs = ms;
    if (ms > 0) {
      idle = globalThis.setTimeout(() => stream.emit('timeout'), idleMs);
      idle.unref();
      stream.on('data', arm);
      stream.once('close', () => {
        if (idle !== undefined) clearTimeout(idle);
      });
    } else {
      stream.off('data', arm);
    }
    return this;
  };
  return s as T & SocketShims;
}

/**
 * The exchange on `stream` is complete (its answer read to the end): a
 * tunnel stream now gives its peer `streamCloseTimeoutMs` to end its half,
 * then resets (see `Stream.expectPeerEnd`). Until then a stream we opened
 * waits for its answer as long as it takes: a WATCH may run for hours.
 */
export function expectPeerEnd(stream: Duplex): void {
  if (stream instanceof Stream) stream.expectPeerEnd();
}
