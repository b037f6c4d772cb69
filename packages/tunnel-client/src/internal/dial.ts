import * as tls from 'node:tls';
import WebSocket, { type ClientOptions } from 'ws';
import { RUNNER_WS_PATH, SUBPROTOCOL, openWebSocket, tunnelWebSocketClientOptions } from '@pipeops/tunnel-protocol';
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
  const url = runnerWsUrl(o);
  const options: ClientOptions = {
    ...tunnelWebSocketClientOptions(url),
    headers: { authorization: `Bearer ${o.token}` },
    handshakeTimeout: o.handshakeTimeoutMs,
    followRedirects: false,
  };
  if (o.insecureSkipVerify) options.rejectUnauthorized = false;
  // Passing `ca` replaces Node's default set: add the defaults back.
  if (o.ca !== undefined) options.ca = [...tls.getCACertificates('default'), ...o.ca.map(String)];
  return openWebSocket<ClientError>(() => new WebSocket(url, [SUBPROTOCOL], options), {
    signal,
    aborted: () => new ClientError('PT_ERR_CLIENT_CLOSED', 'dial aborted: the tunnel is closing'),
    failed: (err) => new ClientError('PT_ERR_CLIENT_DIAL_FAILED', `cannot reach the gateway: ${err.message}`, { cause: err }),
    refused(res) {
      const status = res.statusCode ?? 0;
      if (status === 401 || status === 403) {
        return new ClientError('PT_ERR_AUTH_REJECTED', `the gateway refused the runner token for cluster ${o.cluster} (HTTP ${status})`, { status });
      }
      return new ClientError('PT_ERR_CLIENT_DIAL_FAILED', `the gateway answered the upgrade with HTTP ${status}`, { status: status >= 500 ? status : 502 });
    },
  });
}
