import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Registry } from 'prom-client';
import { TunnelError } from '@pipeops/tunnel-protocol';
import { createGateway, type GatewayOptions } from '../src/index.ts';

const base: GatewayOptions = { host: '127.0.0.1', port: 0, tokens: {}, drainTimeoutMs: 1_000, handshakeTimeoutMs: 1_000 };

test('invalid gateway options are rejected with PT_ERR_GATEWAY_CONFIG naming the option', () => {
  const cases: [Partial<GatewayOptions> & Record<string, unknown>, RegExp][] = [
    [{ port: 70_000 }, /port/],
    [{ host: '' }, /host/],
    [{ handshakeTimeoutMs: 0 }, /handshakeTimeoutMs/],
    [{ drainTimeoutMs: -1 }, /drainTimeoutMs/],
    [{ maxPayloadBytes: 10 }, /maxPayloadBytes/],
    [{ tokensFile: '/x.yaml' }, /tokensFile: give exactly one/],
    [{ clusterAddressSuffix: 'localhost' }, /clusterAddressSuffix: must be a lower-case DNS name of at least two labels/],
    [{ clusterAddressSuffix: 'Clusters.Example.com' }, /clusterAddressSuffix: must be a lower-case DNS name/],
    [
      { fleet: { redisUrl: 'redis://127.0.0.1:1', advertiseUrl: 'https://gw-1.clusters.localhost:8443', secret: 'replica-secret-0123456789' } },
      /clusterAddressSuffix: the replica's advertise URL https:\/\/gw-1\.clusters\.localhost:8443 is a name under it/,
    ],
  ];
  for (const [patch, re] of cases) {
    assert.throws(
      () => createGateway({ ...base, ...patch } as GatewayOptions, { logger: pino({ level: 'silent' }), registry: new Registry() }),
      (err: unknown) => err instanceof TunnelError && err.code === 'PT_ERR_GATEWAY_CONFIG' && re.test(err.message),
      re.source,
    );
  }
});
