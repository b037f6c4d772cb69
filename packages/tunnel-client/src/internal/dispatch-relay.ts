// The local proxy's relay for the requests the dispatcher can resume (a
// WATCH, a `logs -f` with timestamps): sent through `tunnel.dispatcher`
// rather than relayed byte for byte over one stream (relayRequest), so a
// tunnel drop is resumed there and the runner's HTTP response goes on. Each
// chunk is written as it comes (WATCH events are not held back), with
// backpressure: a runner that reads slowly pauses the stream.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { forwardRequestHeaders, isHopByHop, kubeStatusJson, RunnerGoneError, type RelayResult } from '@pipeops/tunnel-protocol';

/** Request headers undici computes itself. */
const COMPUTED = new Set(['host', 'content-length', 'expect', 'transfer-encoding']);

/** Response headers that describe the framing of the upstream answer, not of ours. */
function responseHeaders(headers: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !isHopByHop(k) && k !== 'content-length') out[k] = v;
  return out;
}

function errorStatus(err: Error): number {
  const status = (err as { status?: unknown }).status;
  return typeof status === 'number' && status >= 400 ? status : 502;
}

/** Relays `req` (a GET without body) through `dispatcher` to `res`; resolves when the exchange is over. Never rejects. */
export function relayThroughDispatcher(req: IncomingMessage, res: ServerResponse, dispatcher: Dispatcher, origin: string, path: string): Promise<RelayResult> {
  const result: RelayResult = { status: 0, bytesIn: 0, bytesOut: 0, upgraded: false };
  return new Promise<RelayResult>((resolve) => {
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      if (err !== undefined) result.error = err;
      resolve(result);
    };
    res.once('close', () => {
      if (res.writableFinished) return;
      const gone = new RunnerGoneError();
      result.error ??= gone;
      controller?.abort(gone);
      settle();
    });
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        // The runner may have gone while the dispatcher waited for a stream (res 'close' had no controller to abort).
        if (settled || res.destroyed || res.closed) c.abort(new RunnerGoneError());
      },
      onResponseStart(c, statusCode, headers, statusMessage) {
        if (statusCode < 200) return;
        result.status = statusCode;
        const out = responseHeaders(headers as Record<string, string | string[] | undefined>);
        if (statusMessage !== undefined && statusMessage !== '') res.writeHead(statusCode, statusMessage, out);
        else res.writeHead(statusCode, out);
        res.flushHeaders();
        controller = c;
      },
      onResponseData(c, chunk) {
        result.bytesOut += chunk.length;
        if (!res.write(chunk)) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd() {
        res.end();
        settle();
      },
      onResponseError(_c, err) {
        if (!res.headersSent) {
          const status = errorStatus(err);
          result.status = status;
          const body = kubeStatusJson(status, err.message);
          res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
          res.end(body);
        } else {
          // Started: cutting the connection is the only honest signal left (as relayRequest does).
          res.destroy(err);
        }
        settle(err);
      },
    };
    const headers = forwardRequestHeaders(req.rawHeaders, (lower) => COMPUTED.has(lower));
    dispatcher.dispatch({ origin, path, method: 'GET', headers, body: null, headersTimeout: 0, bodyTimeout: 0 }, handler);
  });
}
