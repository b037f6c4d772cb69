import type { IncomingMessage } from 'node:http';
import * as tls from 'node:tls';
import WebSocket, { type ClientOptions } from 'ws';
import { RUNNER_WS_PATH, SUBPROTOCOL } from '@pipeops/tunnel-protocol';
import type { ResolvedConnectOptions } from '../config.ts';
import { ClientError } from '../errors.ts';

/** The runner WebSocket URL: `wss://gateway/ws/runner?runner_id=…&cluster=…`. */
export function runnerWsUrl(o: ResolvedConnectOptions): URL {
  const url = new URL(o.gatewayUrl.href);
  if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol === 'http:') url.protocol = 'ws:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${RUNNER_WS_PATH}`;
  url.search = '';
  url.searchParams.set('runner_id', o.runnerId);
  url.searchParams.set('cluster', o.cluster);
  return url;
}

/**
 * Opens the runner WebSocket. Resolves once open; rejects with a
 * {@link ClientError}: `PT_ERR_AUTH_REJECTED` for a 401/403 answer (never
 * retried), `PT_ERR_CLIENT_DIAL_FAILED` otherwise (cause preserved).
 */
export function dialRunnerSocket(o: ResolvedConnectOptions, signal: AbortSignal): Promise<WebSocket> {
  const options: ClientOptions = {
    headers: { authorization: `Bearer ${o.token}` },
    perMessageDeflate: false,
    handshakeTimeout: o.handshakeTimeoutMs,
    followRedirects: false,
  };
  if (o.insecureSkipVerify) options.rejectUnauthorized = false;
  // Passing `ca` replaces Node's default set: add the defaults back.
  if (o.ca !== undefined) options.ca = [...tls.getCACertificates('default'), ...o.ca.map(String)];
  return new Promise<WebSocket>((resolve, reject) => {
    let settled = false;
    const ws = new WebSocket(runnerWsUrl(o), [SUBPROTOCOL], options);
    const onAbort = (): void => finish(new ClientError('PT_ERR_CLIENT_CLOSED', 'dial aborted: the tunnel is closing'));
    signal.addEventListener('abort', onAbort, { once: true });
    function finish(err: ClientError | undefined): void {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      ws.off('open', onOpen);
      ws.off('unexpected-response', onResponse);
      ws.off('error', onError);
      if (err === undefined) {
        resolve(ws);
        return;
      }
      // terminate() on a connecting socket emits 'error': keep a listener.
      ws.on('error', () => {});
      ws.terminate();
      reject(err);
    }
    function onOpen(): void {
      finish(undefined);
    }
    function onError(err: Error): void {
      finish(new ClientError('PT_ERR_CLIENT_DIAL_FAILED', `cannot reach the gateway: ${err.message}`, { cause: err }));
    }
    function onResponse(_req: unknown, res: IncomingMessage): void {
      const status = res.statusCode ?? 0;
      res.resume();
      if (status === 401 || status === 403) {
        finish(new ClientError('PT_ERR_AUTH_REJECTED', `the gateway refused the runner token for cluster ${o.cluster} (HTTP ${status})`, { status }));
        return;
      }
      finish(new ClientError('PT_ERR_CLIENT_DIAL_FAILED', `the gateway answered the upgrade with HTTP ${status}`, { status: status >= 500 ? status : 502 }));
    }
    ws.on('open', onOpen);
    ws.on('error', onError);
    ws.on('unexpected-response', onResponse);
  });
}
