import type { TestContext } from 'node:test';
import { connect, type Tunnel } from '../../src/index.ts';
import { startFakeGatewayRunner } from './fake-gateway-runner.ts';
import { createTestApp, type TestApp } from './test-app.ts';

/** A tunnel connected through the fake gateway runner endpoint to a fresh test app; closed after the test. */
export async function connectToTestApp(t: TestContext, token: string): Promise<{ tunnel: Tunnel; app: TestApp }> {
  const app = createTestApp();
  const gw = await startFakeGatewayRunner(t, app.server, { token });
  const tunnel = await connect({ gatewayUrl: gw.url, token, cluster: 'c1', ca: gw.caCert });
  t.after(() => tunnel.close());
  return { tunnel, app };
}
