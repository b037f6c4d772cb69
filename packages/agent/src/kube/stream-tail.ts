// What may follow a request on its stream: nothing but the far side's FIN.
// One stream carries exactly one request: the gateway authorises, polices
// and audits the first head only, so a second request pipelined behind it
// would reach the API server unseen. Its first byte resets the stream.
import type { Exchange } from './exchange.ts';

/**
 * Called once the request (head and body) has been read: `excess` is what
 * came after it in the same read. Any byte after the request, now or later,
 * resets the stream (and aborts the upstream request); the FIN is read so
 * the stream can close.
 */
export function guardTail(ex: Exchange, excess: Buffer): void {
  const refuse = (): void => {
    ex.log.logger.warn({ event: 'pipelined_request_refused', requestId: ex.preamble.requestId }, 'bytes after the request on one stream; stream reset');
    if (!ex.recorded) ex.gone = true;
    ex.inFlight?.abort(new Error('a second request was pipelined on the stream'));
    ex.stream.destroy();
  };
  if (excess.length > 0) {
    refuse();
    return;
  }
  ex.stream.on('data', refuse); // the first byte destroys the stream: no second call
  ex.stream.resume();
}
