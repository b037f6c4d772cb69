// The way to the gateway, one step at a time, so that each step can be
// judged on its own: TCP (direct, or a CONNECT through the proxy the
// environment names), TLS (chain and name judged, not enforced, so a bad
// certificate can be described), and one HTTP exchange on a fresh
// connection. Nothing here keeps a connection open.
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { nodeHttp } from '@pipeops/tunnel-protocol';

/** Where the gateway is and how to reach it. */
export interface GatewayRoute {
  /** The gateway's base URL (`https:`, or `http:` for development); its path prefixes every request path. */
  base: URL;
  /** Host name or IP address, without brackets. */
  host: string;
  port: number;
  /** The proxy the connection goes through (`HTTPS_PROXY`), or undefined for a direct one. */
  proxy: URL | undefined;
  /** Trusted CAs for the gateway's certificate: Node's defaults plus a configured file; undefined = Node's defaults. */
  trust: SecureContext | undefined;
  /** Where that trust comes from, for messages (`system CAs`, `ca_file /x + system CAs`). */
  trustLabel: string;
  /** The configuration skips certificate verification (development). */
  insecureSkipVerify: boolean;
  /** Deadline of one step (connect, handshake, exchange), in ms. */
  timeoutMs: number;
}

/** A failed step: Node's error `code` (`ECONNREFUSED`, `ETIMEDOUT`, `PROXY_REFUSED`…), and the proxy's status for a refused CONNECT. */
export interface StepError extends Error {
  code?: string;
  proxyStatus?: number;
}

const ignore = (): void => {};

function stepError(code: string, message: string, extra: { proxyStatus?: number } = {}): StepError {
  return Object.assign(new Error(message), { code, ...extra });
}

/** The route to `base` (an `http:`/`https:` URL). */
export function gatewayRoute(base: URL, o: Omit<GatewayRoute, 'base' | 'host' | 'port'>): GatewayRoute {
  const host = base.hostname.replace(/^\[|\]$/g, '');
  const port = base.port !== '' ? Number(base.port) : base.protocol === 'https:' ? 443 : 80;
  return { base, host, port, ...o };
}

/** `GET` path under the gateway's base path. */
export function gatewayPath(route: GatewayRoute, path: string): string {
  return `${route.base.pathname.replace(/\/+$/, '')}${path}`;
}

/** A TCP connection to `host:port`, or the connect error (`ETIMEDOUT` after `timeoutMs`). */
export function tcpConnect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(
      () => socket.destroy(stepError('ETIMEDOUT', `no TCP answer from ${host}:${String(port)} within ${String(timeoutMs)} ms`)),
      timeoutMs,
    );
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      // Whoever uses the socket next listens too; a late reset must not be an uncaught error meanwhile.
      socket.on('error', ignore);
      resolve(socket);
    });
    socket.once('error', onError);
  });
}

/** Reads an HTTP response head from `socket` (the answer to a CONNECT); bytes after it are put back. */
function readHead(socket: Socket | TLSSocket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(stepError('ETIMEDOUT', `the proxy did not answer CONNECT within ${String(timeoutMs)} ms`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const rest = buf.subarray(end + 4);
        if (rest.length > 0) socket.unshift(rest);
        done(undefined, buf.subarray(0, end).toString('latin1'));
      } else if (buf.length > 16_384) {
        done(stepError('EPROTO', 'the proxy sent an over-long answer to CONNECT'));
      }
    };
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(stepError('ECONNRESET', 'the proxy closed the connection during CONNECT'));
    function done(err: Error | undefined, head?: string): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err !== undefined) reject(err);
      else resolve(head ?? '');
    }
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

/** A TCP connection to the gateway: direct, or a tunnel through the proxy (`CONNECT host:port`). */
export async function openTcp(route: GatewayRoute): Promise<Socket | TLSSocket> {
  if (route.proxy === undefined) return tcpConnect(route.host, route.port, route.timeoutMs);
  const p = route.proxy;
  const proxyHost = p.hostname.replace(/^\[|\]$/g, '');
  const proxyPort = p.port !== '' ? Number(p.port) : p.protocol === 'https:' ? 443 : 80;
  let socket: Socket | TLSSocket = await tcpConnect(proxyHost, proxyPort, route.timeoutMs);
  try {
    if (p.protocol === 'https:') socket = await tlsHandshake(socket, proxyHost, { rejectUnauthorized: true, trust: undefined }, route.timeoutMs);
    const target = `${isIP(route.host) === 6 ? `[${route.host}]` : route.host}:${String(route.port)}`;
    const auth =
      p.username !== ''
        ? `Proxy-Authorization: Basic ${Buffer.from(`${decodeURIComponent(p.username)}:${decodeURIComponent(p.password)}`).toString('base64')}\r\n`
        : '';
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
    const head = await readHead(socket, route.timeoutMs);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
    if (status !== 200)
      throw stepError('PROXY_REFUSED', `the proxy answered CONNECT ${target} with ${status === 0 ? 'no HTTP status' : `HTTP ${String(status)}`}`, {
        proxyStatus: status,
      });
    return socket;
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/**
 * A TLS handshake on `socket` for `host`. With `rejectUnauthorized: false`
 * the handshake completes whatever the certificate, and the result says
 * whether the chain and the name were trusted (`authorized`,
 * `authorizationError`): the doctor describes a bad certificate instead of
 * only failing on it.
 */
export function tlsHandshake(
  socket: Socket | TLSSocket,
  host: string,
  o: { rejectUnauthorized: boolean; trust: SecureContext | undefined },
  timeoutMs: number,
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tlsConnect({
      socket,
      host,
      rejectUnauthorized: o.rejectUnauthorized,
      // SNI takes a host name only (RFC 6066 §3).
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ...(o.trust !== undefined ? { secureContext: o.trust } : {}),
      ALPNProtocols: ['http/1.1'],
    });
    const timer = setTimeout(() => t.destroy(stepError('ETIMEDOUT', `no TLS handshake with ${host} within ${String(timeoutMs)} ms`)), timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    t.once('secureConnect', () => {
      clearTimeout(timer);
      t.off('error', onError);
      t.on('error', ignore);
      resolve(t);
    });
    t.once('error', onError);
  });
}

/**
 * A connection ready for HTTP: TCP (through the proxy if any), then TLS for
 * `https:`. `verify`: refuse a gateway whose certificate is not trusted
 * (unless the configuration skips verification); off only for requests that
 * carry no secret.
 */
export async function openConnection(route: GatewayRoute, verify: boolean): Promise<Socket | TLSSocket> {
  const socket = await openTcp(route);
  if (route.base.protocol !== 'https:') return socket;
  return tlsHandshake(socket, route.host, { rejectUnauthorized: verify && !route.insecureSkipVerify, trust: route.trust }, route.timeoutMs);
}

/** One HTTP exchange's answer. A `101` is never used: the socket is closed as soon as it arrives. */
export interface Exchange {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body, up to 64 KiB, as text. */
  body: string;
  /** `Date.now()` when the request was sent and when the answer's head arrived. */
  sentAt: number;
  answeredAt: number;
}

/** Most of a body read. */
const MAX_BODY_BYTES = 65_536;

/** Sends one request on a new connection and reads the answer (closing the connection after it, and at once after a `101`). */
export async function exchange(
  route: GatewayRoute,
  req: { method?: string; path: string; headers?: OutgoingHttpHeaders },
  o: { verify: boolean },
): Promise<Exchange> {
  const socket = await openConnection(route, o.verify);
  return new Promise((resolve, reject) => {
    const sentAt = Date.now();
    const r = nodeHttp.request({
      method: req.method ?? 'GET',
      path: gatewayPath(route, req.path),
      headers: { host: route.base.host, connection: 'close', ...req.headers },
      createConnection: () => socket,
    });
    const timer = setTimeout(() => r.destroy(stepError('ETIMEDOUT', `no answer within ${String(route.timeoutMs)} ms`)), route.timeoutMs);
    r.once('upgrade', (res, upgraded) => {
      clearTimeout(timer);
      upgraded.destroy();
      resolve({ status: res.statusCode ?? 101, headers: res.headers, body: '', sentAt, answeredAt: Date.now() });
    });
    r.once('response', (res) => {
      const answeredAt = Date.now();
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < MAX_BODY_BYTES) chunks.push(c);
        size += c.length;
      });
      res.once('end', () => {
        clearTimeout(timer);
        socket.destroy();
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8'),
          sentAt,
          answeredAt,
        });
      });
      res.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    r.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
    r.end();
  });
}

/** A `Sec-WebSocket-Key` (RFC 6455 §4.1: 16 random bytes, base64). */
export function websocketKey(): string {
  return randomBytes(16).toString('base64');
}

/** The subject or issuer of a certificate as `CN=…, O=…`. */
export function distinguishedName(name: PeerCertificate['subject'] | undefined): string {
  if (name === undefined) return '?';
  const parts: string[] = [];
  for (const key of ['CN', 'O'] as const) {
    const v = name[key];
    if (v !== undefined) parts.push(`${key}=${Array.isArray(v) ? v.join('+') : v}`);
  }
  return parts.length > 0 ? parts.join(', ') : '?';
}

/** The message and code of an error, as one line: `connect ECONNREFUSED 127.0.0.1:1`. */
export function describeError(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const code = typeof e?.code === 'string' ? e.code : undefined;
  return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
}
