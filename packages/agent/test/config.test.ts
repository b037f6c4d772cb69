import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TunnelError } from '@pipeops/tunnel-protocol';
import { tunnelUrlFromApiUrl, verifyAgentOptions } from '../src/config.ts';
import { testOptions } from './helpers/options.ts';

test('https API URLs become wss tunnel URLs, keeping port and base path', () => {
  assert.equal(tunnelUrlFromApiUrl('https://gw.example.com', false).href, 'wss://gw.example.com/v1/tunnel');
  assert.equal(tunnelUrlFromApiUrl('https://gw.example.com:8443/base/', false).href, 'wss://gw.example.com:8443/base/v1/tunnel');
  assert.equal(tunnelUrlFromApiUrl('https://[::1]:9000/a', false).href, 'wss://[::1]:9000/a/v1/tunnel');
});

test('http API URLs are refused unless insecure transport is allowed', () => {
  assert.throws(
    () => tunnelUrlFromApiUrl('http://gw:80', false),
    (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_CONFIG' && /apiUrl/.test(e.message),
  );
  assert.equal(tunnelUrlFromApiUrl('http://gw:8080', true).href, 'ws://gw:8080/v1/tunnel');
});

test('other schemes, credentials and queries in the API URL are configuration errors naming apiUrl', () => {
  for (const bad of ['ftp://gw', 'wss://gw', 'https://u:p@gw', 'https://gw/?x=1', 'not a url', '']) {
    assert.throws(
      () => verifyAgentOptions(testOptions({ apiUrl: bad })),
      (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_CONFIG' && e.message.includes('apiUrl'),
      bad,
    );
  }
});

test('valid options pass verification', () => {
  verifyAgentOptions(testOptions());
  verifyAgentOptions(testOptions({ proxy: { httpsProxy: 'http://proxy:3128', noProxy: 'localhost' } }));
});

test('each invalid field is named in the PT_ERR_CONFIG message', () => {
  const cases: Array<[string, Parameters<typeof testOptions>[0]]> = [
    ['token', { token: '' }],
    ['clusterName', { clusterName: ' ' }],
    ['agentId', { agentId: '' }],
    ['pollIntervalMs', { pollIntervalMs: 0 }],
    ['timeoutMs', { timeoutMs: -1 }],
    ['port', { port: 70_000 }],
    ['reconnect.maxAttempts', { reconnect: { enabled: true, maxAttempts: -1, intervalMs: 1, maxIntervalMs: 1 } }],
    ['reconnect.maxIntervalMs', { reconnect: { enabled: true, maxAttempts: 0, intervalMs: 10, maxIntervalMs: 5 } }],
    ['tls.insecureSkipVerify', { tls: { insecureSkipVerify: 'yes' as unknown as boolean } }],
    ['proxy.httpsProxy', { proxy: { httpsProxy: 'socks5://p:1080' } }],
    ['labels.team', { labels: { team: 3 as unknown as string } }],
  ];
  for (const [field, o] of cases) {
    assert.throws(
      () => verifyAgentOptions(testOptions(o)),
      (e: unknown) => e instanceof TunnelError && e.code === 'PT_ERR_CONFIG' && e.message.includes(field),
      field,
    );
  }
});

test('a token never appears in a configuration error message', () => {
  const token = 'line1\nsecret-part';
  assert.throws(
    () => verifyAgentOptions(testOptions({ token })),
    (e: unknown) => e instanceof Error && !e.message.includes('secret-part'),
  );
});
