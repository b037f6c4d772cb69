import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bypassesProxy, proxyForTarget, redactProxyUrl } from '../src/proxy.ts';

test('wss targets use the https proxy and ws targets the http proxy', () => {
  const p = { httpsProxy: 'http://secure-proxy:3128', httpProxy: 'http://plain-proxy:3128' };
  assert.equal(proxyForTarget(new URL('wss://gw.example.com/v1/tunnel'), p)?.host, 'secure-proxy:3128');
  assert.equal(proxyForTarget(new URL('ws://gw.example.com/v1/tunnel'), p)?.host, 'plain-proxy:3128');
  assert.equal(proxyForTarget(new URL('wss://gw.example.com/'), { httpProxy: 'http://plain:1' }), undefined);
  assert.equal(proxyForTarget(new URL('wss://gw.example.com/'), undefined), undefined);
});

test('NO_PROXY entries match exact hosts, domain suffixes, ports and the wildcard', () => {
  const u = (s: string): URL => new URL(s);
  assert.equal(bypassesProxy(u('wss://gw.example.com/'), 'example.com'), true);
  assert.equal(bypassesProxy(u('wss://gw.example.com/'), '.example.com'), true);
  assert.equal(bypassesProxy(u('wss://gw.example.com/'), '*.example.com'), true);
  assert.equal(bypassesProxy(u('wss://example.com/'), '.example.com'), true);
  assert.equal(bypassesProxy(u('wss://badexample.com/'), 'example.com'), false);
  assert.equal(bypassesProxy(u('wss://gw.example.com/'), 'gw.example.com:443'), true);
  assert.equal(bypassesProxy(u('wss://gw.example.com:8443/'), 'gw.example.com:443'), false);
  assert.equal(bypassesProxy(u('wss://10.0.0.1/'), 'localhost, 10.0.0.1'), true);
  assert.equal(bypassesProxy(u('wss://[::1]:9/'), '[::1]:9'), true);
  assert.equal(bypassesProxy(u('wss://anything/'), '*'), true);
  assert.equal(bypassesProxy(u('wss://anything/'), ''), false);
  assert.equal(bypassesProxy(u('wss://anything/'), undefined), false);
});

test('proxy credentials are masked for logs', () => {
  const s = redactProxyUrl(new URL('http://user:pa55@proxy:3128/x'));
  assert.equal(s, 'http://***@proxy:3128');
  assert.ok(!s.includes('pa55'));
});
