// An upgrade request (exec, attach, port-forward): upgraded at the API
// server with undici, then a raw pipe both ways.
import type { Duplex } from 'node:stream';
import {
  auditTarget,
  firstHeader,
  headBytes,
  headerList,
  relayResponseHeaders,
  requestInfo,
  statusLine,
  writeWithBackpressure,
} from '@pipeops/tunnel-protocol';
import type { Exchange, ExchangeResult, KubeProxyOptions, KubeRequest } from './exchange.ts';
import { recordExchange } from './exchange-record.ts';
import { upstreamErrorReason } from './kube-metrics.ts';
import { admitRequest, refuseExchange, type Refusal } from './request-admission.ts';
import { sendRawStatus } from './status.ts';
import { abortWithStream } from './upstream-dispatch.ts';
import { kubeVerb } from './verb.ts';

/** Upgrade protocols the API server speaks for exec, attach and port-forward. */
const UPGRADES = new Map([
  ['websocket', 'websocket'],
  ['spdy/3.1', 'SPDY/3.1'],
]);

/**
 * Serves an upgrade request (exec, attach, port-forward over WebSocket or
 * SPDY/3.1): undici upgrades to the API server with the client's headers and
 * the agent's credentials; a 101 is written back with the API server's
 * headers and then raw bytes flow both ways, each direction's FIN relayed as
 * a half-close. Any other answer is relayed as a plain response (the body
 * delimited by its length or by the end of the stream).
 */
export async function relayUpgrade(req: KubeRequest, stream: Duplex, ex: Exchange, o: KubeProxyOptions): Promise<void> {
  const { method, url: path, rest: head } = req;
  const info = requestInfo(method, path);
  const result: ExchangeResult = {
    method,
    path,
    verb: kubeVerb(method, path, true, info),
    status: undefined,
    bytesIn: 0,
    bytesOut: 0,
    upgraded: false,
    target: auditTarget(info),
  };
  const refuse = (refusal: Refusal): void => refuseExchange(ex, result, o, refusal);
  const protocol = UPGRADES.get((firstHeader(req.rawHeaders, 'upgrade') ?? '').trim().toLowerCase()) ?? '';
  const protocolProblem = protocol === '' ? 'only websocket and SPDY/3.1 upgrades are supported' : undefined;
  const upstream = await admitRequest(req, info, ex, o, { upgrade: true, protocolProblem, use: 'request' }, result, refuse);
  if (upstream === undefined) return;
  const { dispatcher, headers, credentials } = upstream;
  await new Promise<void>((settle) => {
    let headSent = false;
    dispatcher.dispatch(
      { path, method, headers, body: null, upgrade: protocol },
      {
        onRequestStart(controller) {
          abortWithStream(ex, controller);
        },
        onRequestUpgrade(controller, statusCode, _headers, socket) {
          ex.inFlight = undefined;
          result.status = statusCode;
          result.upgraded = true;
          ex.upgraded = true;
          const raw = relayResponseHeaders(headerList(controller.rawHeaders), { switching: true });
          stream.write(headBytes(statusLine(statusCode, 'Switching Protocols'), raw));
          pipeBoth(stream, socket, head, ex, result, o);
          settle();
        },
        onResponseStart(controller, statusCode, _headers, statusText) {
          result.status = statusCode;
          if (statusCode === 401) credentials.invalidate();
          // Close-delimited: the body goes as undici decoded it, and its trailers are not relayed.
          const raw = relayResponseHeaders(headerList(controller.rawHeaders));
          raw.push('connection', 'close');
          stream.write(headBytes(statusLine(statusCode, statusText ?? ''), raw));
          headSent = true;
          // No upgrade: whatever the runner sends is for nobody. Read it away, so that its FIN is seen and the
          // stream closes now, not when the linger timer gives up on it (kubectl exec of a missing pod: 404).
          stream.resume();
        },
        onResponseData(controller, chunk) {
          result.bytesOut += chunk.length;
          writeWithBackpressure(stream, chunk, controller);
        },
        onResponseEnd() {
          ex.inFlight = undefined;
          stream.end();
          recordExchange(ex, result, o);
          settle();
        },
        onResponseError(_controller, err) {
          ex.inFlight = undefined;
          if (!ex.gone) {
            o.metrics.upstreamError(upstreamErrorReason(err));
            if (!headSent) {
              result.status = 502;
              sendRawStatus(stream, 502, `API server upgrade failed: ${err.message}`);
            } else {
              stream.destroy(err);
            }
            result.error = err;
          }
          recordExchange(ex, result, o);
          settle();
        },
      },
    );
  });
}

/** Raw bytes both ways after a 101; FIN → half-close of that direction; an error or RST on either side resets the other. */
function pipeBoth(stream: Duplex, socket: Duplex, head: Buffer, ex: Exchange, result: ExchangeResult, o: KubeProxyOptions): void {
  o.metrics.upgradesActive.inc();
  // Half-close: a FIN from the API server must not end our direction towards it.
  (socket as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
  socket.on('error', () => {});
  if (head.length > 0) {
    result.bytesIn += head.length;
    socket.write(head);
  }
  stream.on('data', (c: Buffer) => {
    result.bytesIn += c.length;
  });
  socket.on('data', (c: Buffer) => {
    result.bytesOut += c.length;
  });
  stream.pipe(socket);
  socket.pipe(stream);
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    o.metrics.upgradesActive.dec();
    recordExchange(ex, result, o);
  };
  stream.once('close', () => {
    if (stream.errored !== null && stream.errored !== undefined) socket.destroy();
    else if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
    finish();
  });
  socket.once('close', () => {
    const err = (socket as Duplex & { errored?: Error | null }).errored;
    if (err !== null && err !== undefined) {
      o.metrics.upstreamError(upstreamErrorReason(err));
      stream.destroy(err);
    } else if (!stream.writableEnded) {
      stream.end();
    }
  });
}
