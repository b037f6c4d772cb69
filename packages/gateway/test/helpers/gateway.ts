import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createGateway, generateDevCertificates, type Gateway, type GatewayOptions, type TokensConfig } from '../../src/index.ts';

type After = { after(fn: () => Promise<void> | void): void };

let certs: ReturnType<typeof generateDevCertificates> | undefined;
/** One dev CA + server certificate per test process (for 127.0.0.1 and localhost). */
export function devCerts(): ReturnType<typeof generateDevCertificates> {
  certs ??= generateDevCertificates({ hosts: ['127.0.0.1', 'localhost'] });
  return certs;
}

/** Tokens used across the tests. */
export const T = {
  agentC1: 'agent-token-c1-0123456789',
  agentC2: 'agent-token-c2-0123456789',
  runnerC1: 'runner-token-r1-0123456789',
  runnerAll: 'runner-token-all-0123456789',
  admin: 'admin-token-0123456789',
} as const;

export const baseTokens: TokensConfig = {
  agents: [
    { cluster: 'c1', token: T.agentC1 },
    { cluster: 'c2', token: T.agentC2 },
  ],
  runners: [
    { id: 'r1', token: T.runnerC1, clusters: ['c1'] },
    { id: 'r-all', token: T.runnerAll, clusters: ['*'] },
  ],
  admins: [{ token: T.admin }],
};

/** A logger at debug level whose records are captured as raw lines and parsed objects. */
export function captureLogger(): { logger: pino.Logger; lines: string[]; records: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  return { logger, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

export interface TestGateway {
  gateway: Gateway;
  address: AddressInfo;
  /** wss://127.0.0.1:port */
  wsUrl: string;
  /** https://127.0.0.1:port */
  httpsUrl: string;
  ca: string;
  registry: Registry;
  log: ReturnType<typeof captureLogger>;
}

/** Starts a TLS gateway on 127.0.0.1 port 0, closed by t.after(). */
export async function startGateway(t: After, overrides: Partial<GatewayOptions> = {}): Promise<TestGateway> {
  const { caCert, cert, key } = devCerts();
  const log = captureLogger();
  const registry = new Registry();
  const options: GatewayOptions = {
    host: '127.0.0.1',
    port: 0,
    tls: { cert, key },
    drainTimeoutMs: 5_000,
    handshakeTimeoutMs: 5_000,
    ...(overrides.tokensFile === undefined ? { tokens: baseTokens } : {}),
    ...overrides,
  };
  const gateway = createGateway(options, { logger: log.logger, registry });
  const address = await gateway.start();
  t.after(() => gateway.close(1_000));
  return {
    gateway,
    address,
    ca: caCert,
    registry,
    log,
    wsUrl: `wss://127.0.0.1:${address.port}`,
    httpsUrl: `https://127.0.0.1:${address.port}`,
  };
}

/** Polls `cond` every 5 ms until it holds, failing after `deadlineMs`. */
export async function waitFor(cond: () => boolean, deadlineMs = 10_000, what = 'condition'): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
