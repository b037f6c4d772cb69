import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import WebSocket from 'ws';
import type { ClientOptions } from 'ws';
import type { Logger } from 'pino';
import { AgentHeaders, SUBPROTOCOL, openWebSocket, tunnelWebSocketClientOptions } from '@pipeops/tunnel-protocol';
import type { AgentOptions } from './config.ts';
import { AgentError } from './errors.ts';
import type { FailureReason } from './metrics.ts';
import { proxyForTarget, redactProxyUrl } from './proxy.ts';

/** Why a dial failed, classified for metrics and for the reconnect policy. */
export class DialError extends AgentError {
  readonly reason: FailureReason;
  /** The target's TCP port refused or reset the connection (the gateway is not listening, or going down). */
  readonly refused: boolean;
  /** HTTP status of a non-upgrade answer, if any. */
  readonly httpStatus: number | undefined;

  constructor(reason: FailureReason, message: string, opts: { cause?: unknown; refused?: boolean; httpStatus?: number } = {}) {
    super(reason === 'auth' ? 'PT_ERR_AUTH_REJECTED' : 'PT_ERR_DIAL_FAILED', message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DialError';
    this.reason = reason;
    this.refused = opts.refused ?? false;
    this.httpStatus = opts.httpStatus;
  }
}

const networkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ECONNABORTED',
  'EADDRNOTAVAIL',
  'ETIMEDOUT',
]);
const tlsCodePattern = /^(CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_TLS_|ERR_SSL_|ERR_OSSL_|HOSTNAME_MISMATCH|EPROTO)/;

/** Classifies a dial-time `error` into a failure reason. */
export function classifyDialError(err: unknown): DialError {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  // A reset during the dial is what a listener that is going down answers:
  // like a refusal, it lets the port probe end the backoff when the port is back.
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET') return new DialError('network', message, { cause: err, refused: true });
  if (networkCodes.has(code)) return new DialError('network', message, { cause: err });
  if (tlsCodePattern.test(code) || /certificate|ssl|tls/i.test(message)) return new DialError('tls', `TLS: ${message}`, { cause: err });
  if (/handshake has timed out/i.test(message)) return new DialError('timeout', message, { cause: err });
  if (/subprotocol|Sec-WebSocket|Upgrade header|Unexpected server response/i.test(message)) return new DialError('handshake', message, { cause: err });
  return new DialError('other', message, { cause: err });
}

/** Everything needed to dial, computed once per connector. */
export interface DialPlan {
  url: URL;
  proxy: URL | undefined;
  /** Where a TCP probe can tell whether the gateway is listening (direct connections only). */
  probe: { host: string; port: number } | undefined;
}

export function planDial(url: URL, options: AgentOptions): DialPlan {
  const proxy = proxyForTarget(url, options.proxy);
  const port = url.port !== '' ? Number(url.port) : url.protocol === 'wss:' ? 443 : 80;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return { url, proxy, probe: proxy === undefined ? { host, port } : undefined };
}

/** The trust store of dials with `tls.caFile`: the file's text, and the TLS context built from it. */
export interface CaTrust {
  pem: string;
  context: tls.SecureContext;
}

/**
 * Reads `tls.caFile` and returns Node's default CA set plus the file's
 * certificates as one TLS context (passing `ca` replaces the defaults, so
 * they are added back). `tls.getCACertificates('default')` already includes
 * NODE_EXTRA_CA_CERTS and, with --use-system-ca, the system store.
 *
 * Building that context parses some 270 certificates (~11 ms of CPU here),
 * so it is built once per content of the file: with `previous` of the same
 * text, `previous` is returned. The file is still read before every dial, so
 * a rotated CA is used from the next dial on.
 */
export function loadCaTrust(caFile: string, previous?: CaTrust): CaTrust {
  let pem: string;
  try {
    pem = readFileSync(caFile, 'utf8');
  } catch (cause) {
    throw new AgentError('PT_ERR_CONFIG', `invalid agent option tls.caFile: cannot read ${caFile}`, { cause });
  }
  if (pem === previous?.pem) return previous;
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new AgentError('PT_ERR_CONFIG', `invalid agent option tls.caFile: ${caFile} holds no PEM certificate`);
  }
  return { pem, context: tls.createSecureContext({ ca: [...tls.getCACertificates('default'), pem] }) };
}

export interface DialInput {
  plan: DialPlan;
  options: AgentOptions;
  ca: CaTrust | undefined;
  logger: Logger;
  signal: AbortSignal;
  /** The session that replaced this agent's last one, sent as `x-pipeops-replaced-by` (see the connector). */
  replacedBy?: string | undefined;
}

/**
 * Opens the tunnel WebSocket. Resolves once open; rejects with a
 * {@link DialError} (reason `auth` for a gateway 401/403 — never retried).
 */
export async function dialTunnel(input: DialInput): Promise<WebSocket> {
  const { plan, options, ca, logger, signal, replacedBy } = input;
  const wsOptions: ClientOptions & Pick<tls.ConnectionOptions, 'secureContext'> = {
    ...tunnelWebSocketClientOptions(plan.url),
    headers: {
      authorization: `Bearer ${options.token}`,
      [AgentHeaders.agentId]: options.agentId,
      [AgentHeaders.cluster]: options.clusterName,
      [AgentHeaders.version]: options.version,
      ...(replacedBy !== undefined ? { [AgentHeaders.replacedBy]: replacedBy } : {}),
    },
    handshakeTimeout: options.timeoutMs,
    followRedirects: false,
  };
  if (options.tls.insecureSkipVerify) wsOptions.rejectUnauthorized = false;
  if (ca !== undefined) wsOptions.secureContext = ca.context;
  let proxyStatus: number | undefined;
  if (plan.proxy !== undefined) {
    // Loaded only when a proxy is configured: ~17 MB of RSS an agent without one never needs.
    const { HttpsProxyAgent } = await import('https-proxy-agent');
    const agent = new HttpsProxyAgent(plan.proxy, { keepAlive: false });
    agent.on('proxyConnect', (res: { statusCode: number }) => {
      proxyStatus = res.statusCode;
    });
    wsOptions.agent = agent;
    logger.debug({ proxy: redactProxyUrl(plan.proxy) }, 'dialing through proxy');
  }
  return openWebSocket<DialError>(() => new WebSocket(plan.url, [SUBPROTOCOL], wsOptions), {
    signal,
    deadline: { ms: options.timeoutMs + 100, error: () => new DialError('timeout', `tunnel dial timed out after ${options.timeoutMs} ms`) },
    aborted: () => new DialError('other', 'dial aborted'),
    failed(err) {
      if (proxyStatus !== undefined && proxyStatus !== 200) {
        return new DialError('network', `proxy refused CONNECT with ${proxyStatus}`, { cause: err, httpStatus: proxyStatus });
      }
      return classifyDialError(err);
    },
    refused(res) {
      const status = res.statusCode ?? 0;
      if (proxyStatus !== undefined && proxyStatus !== 200) return new DialError('network', `proxy refused CONNECT with ${status}`, { httpStatus: status });
      if (status === 401 || status === 403) return new DialError('auth', `gateway refused the agent credentials (HTTP ${status})`, { httpStatus: status });
      if (status === 409) return new DialError('held', 'a newer session holds the cluster (HTTP 409): standing by', { httpStatus: status });
      return new DialError('handshake', `gateway answered the upgrade with HTTP ${status}`, { httpStatus: status });
    },
  });
}
