// The agent's `http` stream kind: one HTTP/1.1 request per stream. The head
// is read and parsed by hand (the protocol's http-head.ts, strict: no
// obs-fold, token names, no control characters, one Content-Length), the body framed by
// http-body.ts, and the request replayed to the API server
// (request-relay.ts, or upgrade-relay.ts for exec, attach and port-forward).
// No http.Server, IncomingMessage or ServerResponse per stream: a WATCH held
// open costs only what it holds.
import type { Duplex } from 'node:stream';
import { connectionTokens, drain, firstHeader, HeadError, parseRequestHead, readHead } from '@pipeops/tunnel-protocol';
import type { StreamHandler } from '../streams.ts';
import type { Exchange, KubeProxyOptions, KubeRequest } from './exchange.ts';
import { recordExchange } from './exchange-record.ts';
import { relayRequest } from './request-relay.ts';
import { sendRawStatus } from './status.ts';
import { relayUpgrade } from './upgrade-relay.ts';

/** The `http` stream kind: one HTTP/1.1 request per stream, replayed to the API server. */
export interface KubeProxy {
  handler: StreamHandler;
}

const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

/**
 * Builds the `http` stream handler: each stream's request head is read and
 * checked; the request is relayed (its target, Host and trust checks are
 * the relay's), and the answer written back on the stream.
 */
export function createKubeProxy(o: KubeProxyOptions): KubeProxy {
  const limit = o.maxHeaderBytes ?? 32_768;
  const handler: StreamHandler = (stream, preamble, ctx) =>
    new Promise<void>((resolve, reject) => {
      const ex: Exchange = {
        stream,
        preamble,
        log: ctx,
        started: performance.now(),
        time: new Date().toISOString(),
        recorded: false,
        gone: false,
        upgraded: false,
        inFlight: undefined,
      };
      let linger: NodeJS.Timeout | undefined;
      const onFinishWrite = (): void => {
        // After a plain response the far side should end its half now; if it never does, reset.
        if (ex.upgraded) return;
        linger = setTimeout(() => stream.destroy(), o.lingerMs ?? 30_000);
        linger.unref();
      };
      // `on`, not `once`: each fires once anyway, and a WATCH held open should not hold once()'s wrappers.
      stream.on('finish', onFinishWrite);
      stream.on('close', () => {
        if (linger !== undefined) clearTimeout(linger);
        if (!ex.recorded) ex.gone = true;
        ex.inFlight?.abort(new Error('the stream closed before the response was complete'));
        const err = stream.errored;
        if (err !== null && err !== undefined) reject(err);
        else resolve();
      });
      serve(stream, ex, o, limit).catch((err: unknown) => {
        ex.log.logger.error({ event: 'kube_relay_failed', requestId: ex.preamble.requestId, err }, 'kube request failed unexpectedly');
        sendRawStatus(stream, 502, 'agent error');
      });
    });
  return { handler };
}

/** Reads the stream's request head and relays the request, or answers why not. */
async function serve(stream: Duplex, ex: Exchange, o: KubeProxyOptions, limit: number): Promise<void> {
  let read: { head: string; rest: Buffer };
  try {
    read = await readHead(stream, limit);
  } catch (err) {
    if (err instanceof HeadError && err.why === 'too-large') refuseHead(ex, o, 400, 'request head too large', err);
    else if (err instanceof HeadError && !stream.destroyed) stream.end(); // closed before a request: nothing to answer
    return;
  }
  const parsed = parseRequestHead(read.head);
  if (parsed === undefined) {
    refuseHead(ex, o, 400, 'malformed HTTP request', new Error('malformed HTTP request head'));
    return;
  }
  const rawHeaders = parsed.headers;
  const req: KubeRequest = { method: parsed.method, url: parsed.target, http10: parsed.requestLine.endsWith('1.0'), rawHeaders, rest: read.rest };
  if (req.method === 'CONNECT') {
    sendRawStatus(stream, 400, 'CONNECT is not allowed');
    recordExchange(ex, { method: 'CONNECT', path: req.url, verb: 'other', status: 400, bytesIn: 0, bytesOut: 0, upgraded: false, rule: 'protocol' }, o);
    return;
  }
  // Returned, not awaited: a WATCH in flight holds the relay, not this function's state.
  if (firstHeader(rawHeaders, 'upgrade') !== undefined && connectionTokens(rawHeaders).has('upgrade')) return relayUpgrade(req, stream, ex, o);
  const expect = firstHeader(rawHeaders, 'expect');
  if (expect !== undefined && !req.http10) {
    // As Node's server does: `100-continue` is granted at once, any other expectation fails (RFC 9110 §10.1.1).
    if (expect.toLowerCase() !== '100-continue') {
      sendRawStatus(stream, 417, `unsupported expectation: ${expect}`, 'protocol', req.method);
      recordExchange(ex, { method: req.method, path: req.url, verb: 'other', status: 417, bytesIn: 0, bytesOut: 0, upgraded: false, rule: 'protocol' }, o);
      return;
    }
    stream.write(CONTINUE);
  }
  return relayRequest(req, stream, ex, o);
}

/** A head that cannot be read or parsed: a 400 `Status` on the raw stream, audited as a protocol refusal. */
function refuseHead(ex: Exchange, o: KubeProxyOptions, code: number, message: string, error: Error): void {
  sendRawStatus(ex.stream, code, message);
  drain(ex.stream);
  recordExchange(ex, { method: '', path: '', verb: 'other', status: code, bytesIn: 0, bytesOut: 0, upgraded: false, error, rule: 'protocol' }, o);
}
