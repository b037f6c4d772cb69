import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { ClusterInfo } from './agent-report.ts';
import { errorBody, sendJson } from './http-util.ts';
import { bearerToken, type TokenStore } from './tokens.ts';

/** What the status endpoints read from the gateway. */
export interface StatusEndpointDeps {
  registry: Registry;
  tokens: () => TokenStore;
  clusters: () => ClusterInfo[];
  /** undefined when ready, else the reason. */
  notReadyReason: () => string | undefined;
}

/**
 * `/health`, `/ready`, `/metrics` and `GET /v1/clusters`. Returns false when
 * the request is not theirs.
 */
export function handleStatusRequest(req: IncomingMessage, res: ServerResponse, path: string, deps: StatusEndpointDeps): boolean {
  switch (path) {
    case '/health':
      sendJson(res, 200, { status: 'ok' });
      return true;
    case '/ready': {
      const reason = deps.notReadyReason();
      if (reason === undefined) sendJson(res, 200, { status: 'ready' });
      else sendJson(res, 503, { status: 'not-ready', reason });
      return true;
    }
    case '/metrics':
      deps.registry.metrics().then(
        (text) => { res.writeHead(200, { 'content-type': deps.registry.contentType }); res.end(text); },
        () => sendJson(res, 500, errorBody('PT_ERR_METRICS', 'metrics collection failed')),
      );
      return true;
    case '/v1/clusters': {
      if (req.method !== 'GET') { sendJson(res, 405, errorBody('PT_ERR_BAD_REQUEST', 'GET only'), { allow: 'GET' }); return true; }
      const token = bearerToken(req.headers.authorization);
      const store = deps.tokens();
      if (store.verifyAdmin(token) !== undefined) {
        sendJson(res, 200, { clusters: deps.clusters() });
        return true;
      }
      const runner = store.verifyRunner(token);
      if (runner === undefined) {
        sendJson(res, 401, errorBody('PT_ERR_AUTH_REJECTED', 'admin or runner token required'), { 'www-authenticate': 'Bearer' });
        return true;
      }
      const visible = deps.clusters().filter((c) => runner.allClusters || runner.clusters.has(c.cluster));
      sendJson(res, 200, { clusters: visible });
      return true;
    }
    default:
      return false;
  }
}
