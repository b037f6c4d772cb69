import type { TestContext } from 'node:test';
import { request } from 'undici';
import { createAgent, type Agent } from '@pipeops/tunnel-agent';
import { startKubePath, type KubePath } from '@pipeops/tunnel-testkit';
import type { GatewayOptions } from '../../src/index.ts';
import { T, baseTokens, type TestGateway } from '../helpers/gateway.ts';

/** Options of {@link RunnerRig.get}. */
export interface GetOptions {
  token?: string | undefined;
  method?: string;
  headers?: Record<string, string>;
}

/** The testkit's real path (gateway over TLS on 127.0.0.1:0, the real agent for cluster c1, the fake API server) with this package's tokens {@link T}. */
export interface RunnerRig extends KubePath<Agent> {
  /** The gateway as {@link startGateway} in ../helpers/gateway.ts describes it. */
  gw: TestGateway;
  /** undici `request` to the gateway, with the gateway CA. */
  get(path: string, opts?: GetOptions): ReturnType<typeof request>;
}

/** Starts gateway + agent + fake API server; everything is closed by t.after(). */
export async function startRunnerRig(t: TestContext, gatewayOverrides: Partial<GatewayOptions> = {}): Promise<RunnerRig> {
  const path = await startKubePath(t, {
    createAgent,
    agentToken: T.agentC1,
    closeGraceMs: 1_000,
    gateway: { tokens: baseTokens, drainTimeoutMs: 5_000, ...gatewayOverrides },
  });
  const logs = path.gatewayLogs;
  const gw: TestGateway = {
    gateway: path.gateway,
    address: path.gatewayAddress,
    ca: path.gatewayCa,
    registry: path.gatewayRegistry,
    log: { logger: logs.logger('debug'), lines: logs.lines, records: () => logs.records },
    wsUrl: `wss://127.0.0.1:${path.gatewayPort}`,
    httpsUrl: path.gatewayUrl,
  };
  return Object.assign(path, {
    gw,
    get: (url: string, opts: GetOptions = {}) =>
      request(`${gw.httpsUrl}${url}`, {
        dispatcher: path.dispatcher,
        method: (opts.method ?? 'GET') as 'GET',
        headers: { ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }), ...opts.headers },
      }),
  });
}

/** The exact Status object the gateway answers with. */
export function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}
