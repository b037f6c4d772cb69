// The agent's `http` stream kind: one HTTP/1.1 request per stream, read by
// Node's own parser and replayed to the API server (request-relay.ts, or
// upgrade-relay.ts for exec, attach and port-forward).
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { serveHttpOverStream } from '@pipeops/tunnel-protocol';
import type { StreamHandler } from '../streams.ts';
import type { Exchange, KubeProxyOptions } from './exchange.ts';
import { recordExchange } from './exchange-record.ts';
import { relayRequest } from './request-relay.ts';
import { sendRawStatus, sendStatus } from './status.ts';
import { relayUpgrade } from './upgrade-relay.ts';

/** The `http` stream kind: one HTTP/1.1 request per stream, replayed to the API server. */
export interface KubeProxy {
  handler: StreamHandler;
}

/**
 * Builds the `http` stream handler. Each stream is handed to one private
 * `http.Server` (never listening) as a connection, so Node's own parser reads
 * the request; the handler validates the target, swaps in the agent's
 * credentials, replays it with undici and streams the answer back.
 */
export function createKubeProxy(o: KubeProxyOptions): KubeProxy {
  const exchanges = new WeakMap<Duplex, Exchange>();
  const server: Server = createServer({
    maxHeaderSize: o.maxHeaderBytes ?? 32_768,
    requireHostHeader: false,   // the Host check is ours, answered with a Status object
    requestTimeout: 0,          // uploads and watches are as long as they are; the gateway bounds them
    headersTimeout: 0,
    keepAlive: false,
  });
  // FIN after the request is a half-close, not a cancellation (RST is).
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  // One stream carries exactly one request: the gateway authorises, polices
  // and audits the first head only, so a second request pipelined behind it
  // would reach the API server unseen. Node's parser keeps reading a
  // connection, so the second head resets the stream instead.
  const secondRequest = (ex: Exchange, req: IncomingMessage): void => {
    ex.logger.warn({ event: 'pipelined_request_refused', requestId: ex.preamble.requestId, method: req.method }, 'a second request on one stream; stream reset');
    ex.abort?.(new Error('a second request was pipelined on the stream'));
    ex.stream.destroy();
  };
  // The first request of a stream is relayed; a failure the relay did not answer itself is logged and answered here.
  const relay = (req: IncomingMessage, socket: Duplex, run: (ex: Exchange) => Promise<void>, failed: (ex: Exchange) => void): void => {
    const ex = exchanges.get(socket);
    if (ex === undefined) { socket.destroy(); return; }
    if (++ex.requests > 1) { secondRequest(ex, req); return; }
    void run(ex).catch((err: unknown) => {
      ex.logger.error({ event: 'kube_relay_failed', requestId: ex.preamble.requestId, err }, 'kube request failed unexpectedly');
      failed(ex);
    });
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    relay(req, req.socket, (ex) => relayRequest(req, res, ex, o), (ex) => {
      if (!res.headersSent) sendStatus(res, 502, 'agent error');
      else ex.stream.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.pause();
    relay(req, socket, (ex) => relayUpgrade(req, socket, head, ex, o), () => socket.destroy());
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const ex = exchanges.get(socket);
    sendRawStatus(socket, 400, 'CONNECT is not allowed');
    if (ex !== undefined) {
      recordExchange(ex, { method: 'CONNECT', path: req.url ?? '', verb: 'other', status: 400, bytesIn: 0, bytesOut: 0, upgraded: false, rule: 'protocol' }, o);
    }
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    // A reset stream surfaces here too: that is a cancellation, handled on 'close'.
    if (typeof err.code !== 'string' || !err.code.startsWith('HPE_')) {
      socket.destroy();
      return;
    }
    const ex = exchanges.get(socket);
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    sendRawStatus(socket, 400, tooLarge ? 'request head too large' : 'malformed HTTP request');
    if (ex !== undefined) {
      recordExchange(ex, { method: '', path: '', verb: 'other', status: 400, bytesIn: 0, bytesOut: 0, upgraded: false, error: err, rule: 'protocol' }, o);
    }
  });

  const handler: StreamHandler = (stream, preamble, ctx) => new Promise<void>((resolve, reject) => {
    const ex: Exchange = {
      stream, preamble, logger: ctx.logger, started: performance.now(), time: new Date().toISOString(), requests: 0, recorded: false, gone: false, upgraded: false,
    };
    exchanges.set(stream, ex);
    let linger: NodeJS.Timeout | undefined;
    const onFinishWrite = (): void => {
      // After a plain response the far side should end its half now; if it never does, reset.
      if (ex.upgraded) return;
      linger = setTimeout(() => stream.destroy(), o.lingerMs ?? 30_000);
      linger.unref();
    };
    stream.once('finish', onFinishWrite);
    stream.once('close', () => {
      if (linger !== undefined) clearTimeout(linger);
      if (!ex.recorded) ex.gone = true;
      ex.abort?.(new Error('the stream closed before the response was complete'));
      const err = stream.errored;
      if (err !== null && err !== undefined) reject(err);
      else resolve();
    });
    serveHttpOverStream(server, stream);
  });
  return { handler };
}
