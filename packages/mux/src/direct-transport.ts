import type { Duplex } from 'node:stream';

/**
 * What a transport may offer besides being a Duplex: its bytes and the
 * session's frames exchanged directly, with no Readable or Writable buffer
 * in between. {@link createSession} uses it when the transport has it under
 * {@link DIRECT_TRANSPORT}; any Duplex works without it. A WebSocket
 * transport hands its frames' payload pieces over as they are decoded, and
 * sends each batch as one binary message.
 */
export interface DirectTransport {
  /**
   * From now on, the bytes that arrive go to `receive`, in order, instead of
   * to the Duplex's readable side. The readable side still ends (and the
   * Duplex still closes) as before.
   */
  receiveInto(receive: (chunk: Buffer) => void): void;
  /**
   * Writes `chunks` in this order, together, before it returns (the caller
   * reuses the array). Returns true when the caller may write again at once;
   * false when it should wait, and then calls `onDrain` once, when it may. A
   * transport that is gone drops the batch: its close reaches the session on
   * its own.
   */
  writeBatch(chunks: Buffer[], onDrain: () => void): boolean;
}

/** The key under which a transport Duplex offers its {@link DirectTransport}. */
export const DIRECT_TRANSPORT: unique symbol = Symbol.for('@pipeops/tunnel-mux.direct-transport');

/** The transport's {@link DirectTransport}, if it offers one. */
export function directTransportOf(transport: Duplex): DirectTransport | undefined {
  const d = (transport as Duplex & { [DIRECT_TRANSPORT]?: DirectTransport })[DIRECT_TRANSPORT];
  return typeof d?.writeBatch === 'function' && typeof d.receiveInto === 'function' ? d : undefined;
}
