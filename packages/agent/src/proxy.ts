import type { ProxyOptions } from './config.ts';

const defaultPorts: Record<string, number> = { 'ws:': 80, 'http:': 80, 'wss:': 443, 'https:': 443 };

/**
 * `true` when `target` must bypass the proxy according to a NO_PROXY-style
 * list: entries separated by commas or spaces; `*` matches everything;
 * `host` matches exactly; `.suffix` / `*.suffix` match the domain and its
 * subdomains; an entry may carry `:port`, which must then match too.
 * IPv6 entries may be bracketed (`[::1]`).
 */
export function bypassesProxy(target: URL, noProxy: string | undefined): boolean {
  if (noProxy === undefined) return false;
  const host = target.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = target.port !== '' ? Number(target.port) : (defaultPorts[target.protocol] ?? 0);
  for (const raw of noProxy.toLowerCase().split(/[\s,]+/)) {
    if (raw === '') continue;
    if (raw === '*') return true;
    let entry = raw;
    let entryPort = 0;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m !== null) {
      entry = m[1] ?? entry;
      entryPort = Number(m[2]);
    }
    entry = entry.replace(/^\[|\]$/g, '');
    if (entryPort !== 0 && entryPort !== port) continue;
    if (entry.startsWith('*.')) entry = entry.slice(1);
    if (entry.startsWith('.')) {
      if (host === entry.slice(1) || host.endsWith(entry)) return true;
    } else if (host === entry || host.endsWith(`.${entry}`)) {
      return true;
    }
  }
  return false;
}

/**
 * The proxy URL to use for `target` (a `ws:`/`wss:` URL), or `undefined` for a
 * direct connection. `wss:` uses `httpsProxy`, `ws:` uses `httpProxy` — as curl
 * and most tools do for `https:`/`http:`.
 */
export function proxyForTarget(target: URL, proxy: ProxyOptions | undefined): URL | undefined {
  if (proxy === undefined) return undefined;
  const raw = target.protocol === 'wss:' ? proxy.httpsProxy : proxy.httpProxy;
  if (raw === undefined || raw === '') return undefined;
  if (bypassesProxy(target, proxy.noProxy)) return undefined;
  return new URL(raw);
}

/** The proxy URL without credentials or path, for logs. */
export function redactProxyUrl(u: URL): string {
  return `${u.protocol}//${u.username !== '' ? '***@' : ''}${u.host}`;
}
