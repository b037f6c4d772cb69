// The checks of the way to the gateway, shared by the agent's doctor and the
// runner's: which proxy applies, DNS, TCP, TLS (chain, name, expiry) and the
// clock. Each stops at the first step that fails; what depends on it is
// reported as skipped.
import { lookup } from 'node:dns/promises';
import { isIP, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { proxyForTarget, redactProxyUrl, type ProxyOptions } from '@pipeops/tunnel-agent';
import type { CheckResult } from './report.ts';
import { describeError, distinguishedName, exchange, gatewayRoute, openTcp, tlsHandshake, type GatewayRoute, type StepError } from './gateway-route.ts';

/** Certificates closer than this to their end are a warning. */
export const CERT_EXPIRY_WARN_DAYS = 14;
/** A clock further than this from the gateway's is a warning, in ms. */
export const CLOCK_SKEW_WARN_MS = 30_000;

/** Who runs the checks: the words of the fixes differ (config keys for the agent, flags for a runner). */
export interface Wording {
  /** Where the gateway URL is set: `pipeops.api_url` / `--gateway`. */
  url: string;
  /** How to trust a private CA. */
  trustCa: string;
  /** How verification was disabled. */
  skipVerify: string;
}

export const AGENT_WORDING: Wording = {
  url: 'pipeops.api_url',
  trustCa: "set pipeops.tls.ca_file (PIPEOPS_PIPEOPS_TLS_CA_FILE) or NODE_EXTRA_CA_CERTS to the PEM of the CA that signed the gateway's certificate",
  skipVerify: 'pipeops.tls.insecure_skip_verify',
};
export const RUNNER_WORDING: Wording = {
  url: '--gateway',
  trustCa: "pass --ca FILE (or NODE_EXTRA_CA_CERTS) with the PEM of the CA that signed the gateway's certificate",
  skipVerify: '--insecure-skip-verify',
};

export interface GatewayReachInput {
  /** `http:`/`https:` base URL of the gateway. */
  base: URL;
  proxy: ProxyOptions | undefined;
  trust: GatewayRoute['trust'];
  trustLabel: string;
  insecureSkipVerify: boolean;
  timeoutMs: number;
  wording: Wording;
}

/** What the way to the gateway came to. */
export interface GatewayReach {
  checks: CheckResult[];
  route: GatewayRoute;
  /** TCP (and the proxy's CONNECT) worked. */
  connected: boolean;
  /** The TLS handshake completed (or the URL is `http:`). */
  handshake: boolean;
  /** A secret may be sent: the certificate is trusted, verification is off by configuration, or the URL is `http:`. */
  trusted: boolean;
}

/** Runs the proxy, DNS, TCP, TLS and clock checks in that order. */
export async function checkGatewayReach(input: GatewayReachInput): Promise<GatewayReach> {
  const checks: CheckResult[] = [];
  const { base, wording } = input;
  const proxyCheck = checkProxy(base, input.proxy);
  checks.push(proxyCheck.check);
  const route = gatewayRoute(base, {
    proxy: proxyCheck.proxy,
    trust: input.trust,
    trustLabel: input.trustLabel,
    insecureSkipVerify: input.insecureSkipVerify,
    timeoutMs: input.timeoutMs,
  });
  const result: GatewayReach = { checks, route, connected: false, handshake: false, trusted: false };
  if (proxyCheck.check.status === 'fail') {
    checks.push(...skipped(['dns', 'tcp', 'tls', 'clock'], 'needs a usable proxy setting'));
    return result;
  }

  const dns = await checkDns(route, wording);
  checks.push(dns);
  if (dns.status === 'fail') {
    checks.push(...skipped(['tcp', 'tls', 'clock'], `needs ${route.host} resolved`));
    return result;
  }

  const started = Date.now();
  let socket: Socket | TLSSocket;
  try {
    socket = await openTcp(route);
  } catch (err) {
    checks.push(tcpFailure(route, err as StepError, wording));
    checks.push(...skipped(['tls', 'clock'], 'needs a TCP connection to the gateway'));
    return result;
  }
  result.connected = true;
  const where = `${route.host}:${String(route.port)}`;
  checks.push({
    id: 'tcp',
    title: 'TCP',
    status: 'pass',
    detail:
      route.proxy === undefined
        ? `connected to ${where}${socket.remoteAddress !== undefined && socket.remoteAddress !== route.host ? ` (${socket.remoteAddress})` : ''} in ${String(Date.now() - started)} ms`
        : `the proxy ${redactProxyUrl(route.proxy)} opened a tunnel to ${where} (CONNECT answered 200) in ${String(Date.now() - started)} ms`,
  });

  const tls = await checkTls(route, socket, wording);
  checks.push(tls.check);
  result.handshake = tls.handshake;
  result.trusted = tls.trusted;
  if (!tls.handshake) {
    checks.push(...skipped(['clock'], 'needs a TLS connection to the gateway'));
    return result;
  }
  checks.push(await checkClock(route));
  return result;
}

/** `skip` results for `ids`, all for the same reason. */
export function skipped(ids: readonly string[], why: string): CheckResult[] {
  return ids.map((id) => ({ id, title: TITLES[id] ?? id, status: 'skip' as const, detail: `skipped: ${why}` }));
}

/** Titles of the checks, by id (for skipped ones). */
export const TITLES: Record<string, string> = {
  config: 'configuration',
  credentials: 'kube credentials',
  apiserver: 'API server',
  rbac: 'RBAC',
  impersonation: 'impersonation',
  proxy: 'proxy',
  dns: 'DNS',
  tcp: 'TCP',
  tls: 'TLS',
  clock: 'clock',
  token: 'token',
  cluster: 'cluster',
  version: '/version',
};

/** The proxy the environment names for the gateway (the agent's rule: `wss:` uses HTTPS_PROXY, `ws:` HTTP_PROXY, NO_PROXY exempts). */
function checkProxy(base: URL, proxy: ProxyOptions | undefined): { check: CheckResult; proxy: URL | undefined } {
  const title = 'proxy';
  if (proxy === undefined)
    return { check: { id: 'proxy', title, status: 'pass', detail: 'no HTTPS_PROXY or HTTP_PROXY set: direct connection' }, proxy: undefined };
  const target = new URL(base.href);
  target.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  const variable = target.protocol === 'wss:' ? 'HTTPS_PROXY' : 'HTTP_PROXY';
  let url: URL | undefined;
  try {
    url = proxyForTarget(target, proxy);
  } catch (err) {
    return {
      check: {
        id: 'proxy',
        title,
        status: 'fail',
        detail: `${variable} is not a URL: ${describeError(err)}`,
        fix: `write ${variable} as http://host:port (credentials as http://user:password@host:port)`,
      },
      proxy: undefined,
    };
  }
  if (url !== undefined) {
    return {
      check: { id: 'proxy', title, status: 'pass', detail: `${variable} applies: through ${redactProxyUrl(url)} (NO_PROXY does not match ${base.hostname})` },
      proxy: url,
    };
  }
  const set = target.protocol === 'wss:' ? proxy.httpsProxy : proxy.httpProxy;
  const detail =
    set === undefined
      ? `${variable} is not set (only ${variable === 'HTTPS_PROXY' ? 'HTTP_PROXY, for http://' : 'HTTPS_PROXY, for https://'}): direct connection`
      : `${variable} is set, but NO_PROXY matches ${base.hostname}: direct connection`;
  return { check: { id: 'proxy', title, status: 'pass', detail }, proxy: undefined };
}

async function checkDns(route: GatewayRoute, wording: Wording): Promise<CheckResult> {
  const title = 'DNS';
  if (isIP(route.host) !== 0) return { id: 'dns', title, status: 'pass', detail: `${route.host} is an IP address: no lookup` };
  try {
    const addresses = await withTimeout(
      lookup(route.host, { all: true }),
      route.timeoutMs,
      `no DNS answer for ${route.host} within ${String(route.timeoutMs)} ms`,
    );
    return { id: 'dns', title, status: 'pass', detail: `${route.host} → ${addresses.map((a) => a.address).join(', ')}` };
  } catch (err) {
    if (route.proxy !== undefined) {
      return {
        id: 'dns',
        title,
        status: 'warn',
        detail: `${route.host} does not resolve here (${describeError(err)}); the proxy resolves it`,
        fix: 'nothing to do if the proxy can resolve it',
      };
    }
    return {
      id: 'dns',
      title,
      status: 'fail',
      detail: `cannot resolve ${route.host}: ${describeError(err)}`,
      fix: `check the host name in ${wording.url} and this host's resolver (/etc/resolv.conf; in a pod, the cluster DNS and a NetworkPolicy allowing port 53)`,
    };
  }
}

function tcpFailure(route: GatewayRoute, err: StepError, wording: Wording): CheckResult {
  const where = `${route.host}:${String(route.port)}`;
  const base = { id: 'tcp', title: 'TCP', status: 'fail' as const };
  if (route.proxy !== undefined) {
    const proxy = redactProxyUrl(route.proxy);
    if (err.code === 'PROXY_REFUSED') {
      const fix =
        err.proxyStatus === 407
          ? 'the proxy wants credentials: put them in HTTPS_PROXY (http://user:password@proxy:port)'
          : `have the proxy allow CONNECT to ${where}, or list the gateway in NO_PROXY if it is reachable directly`;
      return { ...base, detail: `${err.message} (proxy ${proxy})`, fix };
    }
    return {
      ...base,
      detail: `cannot reach the proxy ${proxy}: ${describeError(err)}`,
      fix: 'check HTTPS_PROXY (host and port) and that the proxy runs, or list the gateway in NO_PROXY',
    };
  }
  if (err.code === 'ECONNREFUSED') {
    return {
      ...base,
      detail: `connection refused by ${where}: nothing listens there`,
      fix: `check the port in ${wording.url} and that the gateway is running (a firewall may refuse too)`,
    };
  }
  if (err.code === 'ETIMEDOUT') {
    return { ...base, detail: err.message, fix: `a firewall drops the connection: allow egress to ${where} (only outbound HTTPS to the gateway is needed)` };
  }
  return { ...base, detail: `cannot connect to ${where}: ${describeError(err)}`, fix: `check the network route to ${where} and ${wording.url}` };
}

/** The TLS check: the handshake completes whatever the certificate, and the certificate is judged. */
async function checkTls(
  route: GatewayRoute,
  socket: Socket | TLSSocket,
  wording: Wording,
): Promise<{ check: CheckResult; handshake: boolean; trusted: boolean }> {
  const title = 'TLS';
  if (route.base.protocol !== 'https:') {
    socket.destroy();
    return {
      check: {
        id: 'tls',
        title,
        status: 'warn',
        detail: 'http:// URL: the connection to the gateway is not encrypted (development only)',
        fix: `use an https:// URL in ${wording.url}`,
      },
      handshake: true,
      trusted: true,
    };
  }
  let t: TLSSocket;
  try {
    t = await tlsHandshake(socket, route.host, { rejectUnauthorized: false, trust: route.trust }, route.timeoutMs);
  } catch (err) {
    return {
      check: {
        id: 'tls',
        title,
        status: 'fail',
        detail: `TLS handshake with ${route.host}:${String(route.port)} failed: ${describeError(err)}`,
        fix: `check that the gateway serves TLS on this port (an http:// gateway needs an http:// URL in ${wording.url}, development only) and that nothing in between intercepts it`,
      },
      handshake: false,
      trusted: false,
    };
  }
  const cert = t.getPeerCertificate(false);
  const protocol = t.getProtocol() ?? 'TLS';
  const authorized = t.authorized;
  const reason = t.authorizationError === null || t.authorizationError === undefined ? undefined : String(t.authorizationError);
  t.destroy();
  const validTo = cert.valid_to !== undefined ? new Date(cert.valid_to) : undefined;
  const days = validTo !== undefined ? Math.floor((validTo.getTime() - Date.now()) / 86_400_000) : undefined;
  const described = `${distinguishedName(cert.subject)}, issued by ${distinguishedName(cert.issuer)}${validTo !== undefined ? `, valid until ${validTo.toISOString().slice(0, 10)} (${String(days)} days)` : ''}, ${protocol}`;
  if (!authorized) {
    const why = untrustedReason(reason, cert, route);
    if (route.insecureSkipVerify) {
      return {
        check: {
          id: 'tls',
          title,
          status: 'warn',
          detail: `not verified (${wording.skipVerify}); it would fail: ${why.text}\n${described}`,
          fix: why.fix(wording),
        },
        handshake: true,
        trusted: true,
      };
    }
    return { check: { id: 'tls', title, status: 'fail', detail: `${why.text}\n${described}`, fix: why.fix(wording) }, handshake: true, trusted: false };
  }
  if (route.insecureSkipVerify) {
    return {
      check: {
        id: 'tls',
        title,
        status: 'warn',
        detail: `trusted (${route.trustLabel}), but verification is disabled by ${wording.skipVerify}\n${described}`,
        fix: `remove ${wording.skipVerify}`,
      },
      handshake: true,
      trusted: true,
    };
  }
  if (days !== undefined && days < CERT_EXPIRY_WARN_DAYS) {
    return {
      check: {
        id: 'tls',
        title,
        status: 'warn',
        detail: `trusted (${route.trustLabel}), but the certificate expires in ${String(days)} days\n${described}`,
        fix: "renew the gateway's certificate",
      },
      handshake: true,
      trusted: true,
    };
  }
  return { check: { id: 'tls', title, status: 'pass', detail: `trusted (${route.trustLabel}): ${described}` }, handshake: true, trusted: true };
}

function untrustedReason(
  code: string | undefined,
  cert: ReturnType<TLSSocket['getPeerCertificate']>,
  route: GatewayRoute,
): { text: string; fix: (w: Wording) => string } {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return {
        text: `the certificate expired on ${String(cert.valid_to)} (${code})`,
        fix: () => "renew the gateway's certificate, and check this host's clock",
      };
    case 'CERT_NOT_YET_VALID':
      return { text: `the certificate is not valid before ${String(cert.valid_from)} (${code})`, fix: () => "check this host's clock and the gateway's (NTP)" };
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return {
        text: `the certificate does not name ${route.host} (it names ${cert.subjectaltname ?? distinguishedName(cert.subject)}) (${code})`,
        fix: (w) => `use a host name in ${w.url} that the certificate names, or reissue the certificate with ${route.host} in its subjectAltName`,
      };
    default:
      return {
        text: `the certificate is not trusted by ${route.trustLabel}: ${code ?? 'unknown reason'} (issuer ${distinguishedName(cert.issuer)})`,
        fix: (w) => w.trustCa,
      };
  }
}

/** The gateway's `Date` against this clock (no secret is sent; the certificate is not required to be trusted for it). */
async function checkClock(route: GatewayRoute): Promise<CheckResult> {
  const title = 'clock';
  try {
    const ex = await exchange(route, { path: '/health' }, { verify: false });
    const date = ex.headers.date;
    const at = date !== undefined ? Date.parse(date) : Number.NaN;
    if (Number.isNaN(at))
      return {
        id: 'clock',
        title,
        status: 'warn',
        detail: "the gateway's answer has no Date header: clock not compared",
        fix: 'nothing to do unless certificates or tokens look expired',
      };
    // The gateway stamped Date (whole seconds: the middle of its second) between sending and answering.
    const skewMs = (ex.sentAt + ex.answeredAt) / 2 - (at + 500);
    const s = Math.round(Math.abs(skewMs) / 1000);
    if (Math.abs(skewMs) > CLOCK_SKEW_WARN_MS) {
      return {
        id: 'clock',
        title,
        status: 'warn',
        detail: `this clock is ${String(s)} s ${skewMs > 0 ? 'ahead of' : 'behind'} the gateway's`,
        fix: 'synchronise the clocks (NTP): a skew makes certificates and tokens look expired or not yet valid',
      };
    }
    return { id: 'clock', title, status: 'pass', detail: `within ${String(Math.max(1, s))} s of the gateway's (its Date header)` };
  } catch (err) {
    return {
      id: 'clock',
      title,
      status: 'warn',
      detail: `could not read the gateway's clock: ${describeError(err)}`,
      fix: 'nothing to do unless certificates or tokens look expired',
    };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(message), { code: 'ETIMEDOUT' })), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** The gateway's answer as one line: `HTTP 401 PT_ERR_AUTH_REJECTED: agent token missing or rejected`. */
export function answerText(status: number, body: string): string {
  let code: string | undefined;
  let message: string | undefined;
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown }; reason?: unknown; message?: unknown };
    if (parsed.error !== undefined) {
      code = typeof parsed.error.code === 'string' ? parsed.error.code : undefined;
      message = typeof parsed.error.message === 'string' ? parsed.error.message : undefined;
    } else {
      code = typeof parsed.reason === 'string' ? parsed.reason : undefined;
      message = typeof parsed.message === 'string' ? parsed.message : undefined;
    }
  } catch {
    message = body.trim().split('\n')[0]?.slice(0, 200);
  }
  return `HTTP ${String(status)}${code !== undefined ? ` ${code}` : ''}${message !== undefined && message !== '' ? `: ${message}` : ''}`;
}
