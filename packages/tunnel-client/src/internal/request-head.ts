// The request head (and how its body is sent) of a dispatch the tunnel
// dispatcher writes by hand (./stream-exchange.ts), validated by the rules
// undici's own Client applies, with undici's error classes: a header name
// that is not a token, a value with CR, LF or NUL (header injection), a
// Transfer-Encoding, Keep-Alive, Upgrade or Expect header set by hand, a
// duplicate Host or Content-Length, a path that is not origin-form. What the
// hand-written exchange does not take (upgrades, CONNECT, FormData, Blob and
// iterable bodies, `expectContinue`) is left to undici: `undefined`.
import { stringify } from 'node:querystring';
import { Readable } from 'node:stream';
import { type Dispatcher, errors } from 'undici';

/** How the body goes out: none, bytes of a known length, or a Readable (Content-Length when the caller gave one, else chunked). */
export type BodyPlan = { kind: 'none' } | { kind: 'bytes'; bytes: Buffer } | { kind: 'stream'; source: Readable; length: number | undefined };

/** A request ready to write: its head (latin1 bytes) and its body. */
export interface PreparedRequest {
  head: Buffer;
  body: BodyPlan;
  method: string;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value: no CR, LF, NUL (or other control character but HTAB). */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
/** A request target: printable bytes, no space (as undici checks). */
const BAD_PATH = /[^\u0021-\u00ff]/;
const DIGITS = /^\d+$/;
/** Methods whose semantics expect a body: a bodyless one still says `content-length: 0`. */
const EXPECTS_PAYLOAD = new Set(['PUT', 'POST', 'PATCH', 'QUERY', 'PROPFIND', 'PROPPATCH']);

const invalid = (message: string): Error => new errors.InvalidArgumentError(message);

/**
 * `options` as a head and a body plan for `host` (the Host header when the
 * caller sent none), or undefined when the request needs undici's Client.
 * Throws undici's InvalidArgumentError (or NotSupportedError,
 * RequestContentLengthMismatchError) where undici would.
 */
export function prepareRequest(options: Dispatcher.DispatchOptions, host: string): PreparedRequest | undefined {
  const method = options.method;
  if (options.upgrade != null || method === 'CONNECT' || (options as { expectContinue?: boolean }).expectContinue === true) return undefined;
  if (typeof method !== 'string' || !TOKEN.test(method)) throw invalid('invalid request method');
  let path = options.path;
  if (typeof path !== 'string' || (path[0] !== '/' && !path.startsWith('http://') && !path.startsWith('https://'))) {
    throw invalid('path must be an absolute URL or start with a slash');
  }
  if (BAD_PATH.test(path)) throw invalid('invalid request path');
  const query = (options as { query?: Record<string, unknown> }).query;
  if (query != null) {
    if (path.includes('?') || path.includes('#')) throw new Error('Query params cannot be passed when url already contains "?" or "#".');
    const q = stringify(query as Parameters<typeof stringify>[0]);
    if (q !== '') path += `?${q}`;
  }
  const body = bodyPlan(options.body);
  if (body === undefined) return undefined;

  let head = `${method} ${path} HTTP/1.1\r\n`;
  let hostSeen = false;
  let contentLength: number | undefined;
  const field = (name: unknown, value: unknown): void => {
    if (typeof name !== 'string' || !TOKEN.test(name)) throw invalid('invalid header key');
    if (value === undefined) return;
    const lower = name.toLowerCase();
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) throw invalid(`invalid ${name} header`);
      const text = v === null ? '' : Buffer.isBuffer(v) ? v.toString('latin1') : `${v as string | number | boolean}`;
      if (BAD_VALUE.test(text)) throw invalid(`invalid ${name} header`);
      if (lower === 'host') {
        if (hostSeen || Array.isArray(value)) throw invalid(hostSeen ? 'duplicate host header' : 'invalid host header');
        hostSeen = true;
      } else if (lower === 'content-length') {
        if (contentLength !== undefined) throw invalid('duplicate content-length header');
        if (!DIGITS.test(text)) throw invalid('invalid content-length header');
        contentLength = Number(text);
        continue; // written below, once the body's length is known
      } else if (lower === 'transfer-encoding' || lower === 'keep-alive' || lower === 'upgrade') {
        throw invalid(`invalid ${lower} header`);
      } else if (lower === 'connection') {
        const c = text.toLowerCase();
        if (c !== 'close' && c !== 'keep-alive') throw invalid('invalid connection header');
        continue; // one request per stream: the head says nothing about reuse
      } else if (lower === 'expect') {
        throw new errors.NotSupportedError('expect header not supported');
      }
      head += `${name}: ${text}\r\n`;
    }
  };
  const headers = options.headers as unknown;
  if (Array.isArray(headers)) {
    if (headers.length % 2 !== 0) throw invalid('headers array must be even');
    for (let i = 0; i < headers.length; i += 2) field(asName(headers[i]), headers[i + 1]);
  } else if (headers !== null && typeof headers === 'object') {
    if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
      for (const pair of headers as Iterable<unknown>) {
        if (!Array.isArray(pair) || pair.length !== 2) throw invalid('headers must be in key-value pair format');
        field(pair[0], pair[1]);
      }
    } else {
      for (const [name, value] of Object.entries(headers)) field(name, value);
    }
  } else if (headers != null) {
    throw invalid('headers must be an object or an array');
  }
  if (!hostSeen) head += `host: ${host}\r\n`;

  if (body.kind === 'bytes') {
    if (contentLength !== undefined && contentLength !== body.bytes.length) throw new errors.RequestContentLengthMismatchError();
    head += `content-length: ${body.bytes.length}\r\n`;
  } else if (body.kind === 'stream') {
    if (contentLength !== undefined) {
      body.length = contentLength;
      head += `content-length: ${contentLength}\r\n`;
    } else head += 'transfer-encoding: chunked\r\n';
  } else if (contentLength !== undefined && contentLength !== 0) {
    throw new errors.RequestContentLengthMismatchError();
  } else if (EXPECTS_PAYLOAD.has(method)) {
    head += 'content-length: 0\r\n';
  }
  return { head: Buffer.from(`${head}\r\n`, 'latin1'), body, method };
}

/** How `body` goes out, or undefined when undici's Client has to send it (FormData, Blob, iterables). */
function bodyPlan(body: unknown): BodyPlan | undefined {
  if (body == null) return { kind: 'none' };
  if (typeof body === 'string') return body.length === 0 ? { kind: 'none' } : { kind: 'bytes', bytes: Buffer.from(body, 'utf8') };
  if (Buffer.isBuffer(body)) return body.length === 0 ? { kind: 'none' } : { kind: 'bytes', bytes: body };
  if (ArrayBuffer.isView(body)) {
    return body.byteLength === 0 ? { kind: 'none' } : { kind: 'bytes', bytes: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
  }
  if (body instanceof ArrayBuffer) return body.byteLength === 0 ? { kind: 'none' } : { kind: 'bytes', bytes: Buffer.from(body) };
  if (body instanceof Readable) return { kind: 'stream', source: body, length: undefined };
  return undefined;
}

function asName(n: unknown): unknown {
  return Buffer.isBuffer(n) ? n.toString('latin1') : n;
}
