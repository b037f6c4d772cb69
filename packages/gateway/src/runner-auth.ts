import { bearerToken, type RunnerIdentity, type TokenStore } from './tokens.ts';

/** A cluster name as the runner routes accept it (in the path or the `cluster` query parameter). */
export const CLUSTER_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

/** The outcome of runner authentication. */
export type Authorized = { ok: true; runner: RunnerIdentity } | { ok: false; status: 401 | 403; message: string };

/**
 * Authenticates a runner (`Authorization: Bearer <runner token>`) and checks
 * it may reach `cluster` (`clusters: ["*"]` reaches all). Agent and admin
 * tokens are not runner tokens (401).
 */
export function authorizeRunner(tokens: TokenStore, authorization: string | undefined, cluster: string): Authorized {
  const runner = tokens.verifyRunner(bearerToken(authorization));
  if (runner === undefined) return { ok: false, status: 401, message: 'a valid runner token is required (Authorization: Bearer <token>)' };
  if (!runner.allClusters && !runner.clusters.has(cluster)) {
    return { ok: false, status: 403, message: `runner "${runner.id}" is not allowed to reach cluster "${cluster}"` };
  }
  return { ok: true, runner };
}
