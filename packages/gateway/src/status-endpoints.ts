import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { ClusterInfo } from './agent-report.ts';
import { errorBody, sendJson } from './http-util.ts';
import { bearerToken, type TokenStore } from './tokens.ts';

/** What the status endpoints read from the gateway. */
export interface StatusEndpointDeps {
  registry: Registry;
  tokens: () => TokenStore;
  clusters: () => Promise<ClusterInfo[]>;
  /** undefined when ready, else the reason. */
  notReadyReason: () => string | undefined;
  /** Why the replica serves only part of what it should (e.g. the fleet registry is unreachable): `/ready` stays 200 and says so. */
  degradedReason?: () => string | undefined;
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
      const degraded = deps.degradedReason?.();
      if (reason !== undefined) sendJson(res, 503, { status: 'not-ready', reason });
      else if (degraded !== undefined) sendJson(res, 200, { status: 'degraded', reason: degraded });
      else sendJson(res, 200, { status: 'ready' });
      return true;
    }
    case '/metrics':
      deps.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': deps.registry.contentType });
          res.end(text);
        },
        () => sendJson(res, 500, errorBody('PT_ERR_METRICS', 'metrics collection failed')),
      );
      return true;
    case '/v1/clusters': {
      if (req.method !== 'GET') {
        sendJson(res, 405, errorBody('PT_ERR_BAD_REQUEST', 'GET only'), { allow: 'GET' });
        return true;
      }
      const token = bearerToken(req.headers.authorization);
      const store = deps.tokens();
      const admin = store.verifyAdmin(token) !== undefined;
      const runner = admin ? undefined : store.verifyRunner(token);
      if (!admin && runner === undefined) {
        sendJson(res, 401, errorBody('PT_ERR_AUTH_REJECTED', 'admin or runner token required'), { 'www-authenticate': 'Bearer' });
        return true;
      }
      deps.clusters().then(
        (all) => sendJson(res, 200, { clusters: runner === undefined ? all : all.filter((c) => runner.allClusters || runner.clusters.has(c.cluster)) }),
        () => sendJson(res, 500, errorBody('PT_ERR_INTERNAL', 'could not list the clusters')),
      );
      return true;
    }
    default:
      return false;
  }
}
