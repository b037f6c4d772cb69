import type { ProxyOptions } from '@pipeops/tunnel-agent';

function pick(env: Record<string, string | undefined>, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = env[n];
    if (v !== undefined && v.trim() !== '') return v.trim();
  }
  return undefined;
}

/**
 * The agent's outbound proxy from the conventional variables
 * (`HTTPS_PROXY`/`https_proxy`, `HTTP_PROXY`/`http_proxy`, `NO_PROXY`/`no_proxy`;
 * lower case wins, as in curl). `undefined` when no proxy is set.
 */
export function proxyFromEnv(env: Record<string, string | undefined>): ProxyOptions | undefined {
  const httpsProxy = pick(env, 'https_proxy', 'HTTPS_PROXY');
  const httpProxy = pick(env, 'http_proxy', 'HTTP_PROXY');
  const noProxy = pick(env, 'no_proxy', 'NO_PROXY');
  if (httpsProxy === undefined && httpProxy === undefined) return undefined;
  return {
    ...(httpsProxy !== undefined ? { httpsProxy } : {}),
    ...(httpProxy !== undefined ? { httpProxy } : {}),
    ...(noProxy !== undefined ? { noProxy } : {}),
  };
}
