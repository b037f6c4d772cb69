import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createGateway } from '@pipeops/tunnel-gateway';
import type { Gateway } from '@pipeops/tunnel-gateway';
import { testCerts } from './certs.ts';

export interface StartedGateway {
  gateway: Gateway;
  port: number;
  url: string;
  registry: Registry;
}

/** Starts the real gateway over TLS on 127.0.0.1 (port 0 unless given) for one agent token; closed after the test. */
export async function startGateway(
  t: TestContext,
  o: { token: string; cluster?: string; port?: number; keepAliveIntervalMs?: number },
): Promise<StartedGateway> {
  const certs = testCerts();
  const registry = new Registry();
  const gateway = createGateway(
    {
      host: '127.0.0.1',
      port: o.port ?? 0,
      tls: { cert: certs.cert, key: certs.key },
      tokens: { agents: [{ cluster: o.cluster ?? 'c1', token: o.token }], runners: [], admins: [] },
      drainTimeoutMs: 1_000,
      handshakeTimeoutMs: 2_000,
    },
    { logger: pino({ level: 'silent' }), registry },
  );
  t.after(() => gateway.close(500));
  const addr = await gateway.start();
  return { gateway, port: addr.port, url: `https://127.0.0.1:${addr.port}`, registry };
}
