// HTTP/1.1 message heads read, parsed and written by hand (RFC 9112 §2-§4):
// where a relay splices the bytes of a stream and looks only at its heads,
// and where an answer is written on a raw connection.
import type { Duplex } from 'node:stream';
import { TunnelError } from './errors.ts';
import { nodeHttp } from './node-http.ts';

const HEAD_END = Buffer.from('\r\n\r\n');
/** No bytes read yet: one shared empty buffer (a fresh one per head was an ArrayBuffer per request). */
const NOTHING = Buffer.alloc(0);
// RFC 9112 §3: method SP request-target SP HTTP-version; the method a token (RFC 9110 §5.6.2).
// The target: no space, no control character (as Node's parser; bytes from 0x80 up pass).
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^\x00-\x20\x7f]+) HTTP\/1\.[01]$/;
// RFC 9112 §5: field-name ":" OWS field-value OWS; no obs-fold, no control character but HTAB in the value.
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*$/;

/** One header (or trailer) field line parsed by the rule of every head: `[name, value]`, or undefined when malformed. */
export function parseFieldLine(line: string): [string, string] | undefined {
  const h = HEADER_LINE.exec(line);
  return h === null ? undefined : [h[1]!, h[2]!];
}

/** Appends the field lines `lines[from…]` to `out` as `name, value, …`; false at the first malformed one. */
function pushFieldLines(lines: readonly string[], from: number, out: string[]): boolean {
  for (let i = from; i < lines.length; i++) {
    const h = HEADER_LINE.exec(lines[i]!);
    if (h === null) return false;
    out.push(h[1]!, h[2]!);
  }
  return true;
}
// RFC 9112 §4: HTTP-version SP status-code SP [ reason-phrase ].
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/;

/** A parsed request head: the request line, and the header lines as they came. */
export interface RequestHead {
  method: string;
  target: string;
  requestLine: string;
  /** The header lines in order, flat: `[name, value, …]`, names as sent. */
  headers: string[];
}

/** Why a head could not be read: the peer closed first, or it is larger than allowed. */
export class HeadError extends TunnelError {
  readonly why: 'closed' | 'too-large';
  constructor(why: 'closed' | 'too-large') {
    super('PT_ERR_HTTP_HEAD', why === 'closed' ? 'the stream ended before a complete head' : 'head too large');
    this.name = 'HeadError';
    this.why = why;
  }
}

/**
 * Reads from `stream` (after the bytes of `initial`, already read) until a
 * blank line; resolves with the head (without the blank line, latin1) and
 * what came after it, the stream paused. Rejects with {@link HeadError} when
 * the stream ends first or the head exceeds `limit` bytes, and with the
 * stream's error when it fails.
 */
export function readHead(stream: Duplex, limit: number, initial: Buffer = NOTHING): Promise<{ head: string; rest: Buffer }> {
  const end = initial.indexOf(HEAD_END);
  if (end !== -1) {
    return end > limit
      ? Promise.reject(new HeadError('too-large'))
      : Promise.resolve({ head: initial.toString('latin1', 0, end), rest: initial.subarray(end + 4) });
  }
  return new Promise((resolve, reject) => {
    let buffered = initial;
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      // Search from where a split terminator could start, not from 0 each time.
      const from = Math.max(0, buffered.length - 3);
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(HEAD_END, from);
      if (end === -1) {
        if (buffered.length > limit) {
          cleanup();
          stream.pause();
          reject(new HeadError('too-large'));
        }
        return;
      }
      cleanup();
      stream.pause();
      if (end > limit) {
        reject(new HeadError('too-large'));
        return;
      }
      resolve({ head: buffered.toString('latin1', 0, end), rest: buffered.subarray(end + 4) });
    };
    const onEnd = (): void => {
      cleanup();
      reject(new HeadError('closed'));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    // `on`, not `once`: cleanup removes all four (once's wrappers were three allocations per head).
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

/** Parses a request head strictly (no obs-fold, token names, no control characters); undefined when malformed. */
export function parseRequestHead(head: string): RequestHead | undefined {
  const lines = head.split('\r\n');
  const m = REQUEST_LINE.exec(lines[0] ?? '');
  if (m === null) return undefined;
  const headers: string[] = [];
  if (!pushFieldLines(lines, 1, headers)) return undefined;
  return { method: m[1]!, target: m[2]!, requestLine: lines[0]!, headers };
}

/** A parsed response head: status, reason phrase, and the header lines as they came (flat `[name, value, …]`). */
export interface ResponseHead {
  status: number;
  reason: string;
  headers: string[];
}

const STATUS_LINE_PARTS = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/;

/** Parses a response head strictly (no obs-fold, token names); undefined when malformed. */
export function parseResponseHead(head: string): ResponseHead | undefined {
  const lines = head.split('\r\n');
  const m = STATUS_LINE_PARTS.exec(lines[0] ?? '');
  if (m === null) return undefined;
  const headers: string[] = [];
  if (!pushFieldLines(lines, 1, headers)) return undefined;
  return { status: Number(m[1]), reason: m[2] ?? '', headers };
}

/** The status code of a response head's first line; undefined when it is not one. */
export function statusOf(head: string): number | undefined {
  const eol = head.indexOf('\r\n');
  const m = STATUS_LINE.exec(eol === -1 ? head : head.slice(0, eol));
  return m === null ? undefined : Number(m[1]);
}

/** The value of the first header `name` (lower case) in a raw head, or undefined. */
export function headerValue(head: string, name: string): string | undefined {
  const lower = head.toLowerCase();
  const at = lower.indexOf(`\r\n${name}:`);
  if (at === -1) return undefined;
  const from = at + name.length + 3;
  const end = head.indexOf('\r\n', from);
  return head.slice(from, end === -1 ? undefined : end).trim();
}

/** `HTTP/1.1 <code> <reason>`, the reason `message` or the standard phrase. */
export function statusLine(code: number, message: string = nodeHttp.STATUS_CODES[code] ?? 'Error'): string {
  return `HTTP/1.1 ${String(code)} ${message}`.trimEnd();
}

/** A complete head: `startLine`, the headers of a flat `[name, value, …]` list, the blank line (latin1). */
export function headBytes(startLine: string, headers: readonly string[]): Buffer {
  let s = `${startLine}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) s += `${headers[i] ?? ''}: ${headers[i + 1] ?? ''}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}

/**
 * A complete close-delimited answer for a raw connection (a refused upgrade
 * or CONNECT, a parse error): `Connection: close`, the body's type and length,
 * then `headers` (flat `[name, value, …]`).
 */
export function closingResponse(code: number, contentType: string, body: string | Buffer, headers: readonly string[] = []): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const head = headBytes(statusLine(code), ['Connection', 'close', 'Content-Type', contentType, 'Content-Length', String(bytes.length), ...headers]);
  return Buffer.concat([head, bytes]);
}

/**
 * Why a request target is refused, or undefined when it is acceptable: the
 * tunnel relays only origin-form targets (RFC 9112 §3.2.1, `/path?query`),
 * never absolute-form (a proxy request), authority-form (CONNECT) or
 * asterisk-form, and not `//…`, which a server may read as a network path.
 */
export function requestTargetProblem(target: string | undefined): string | undefined {
  if (target === undefined || target === '') return 'empty request target';
  if (target === '*') return 'asterisk-form request target is not allowed';
  if (!target.startsWith('/')) return 'only origin-form request targets (/path?query) are accepted';
  if (target.startsWith('//')) return 'request target must not start with //';
  return undefined;
}
