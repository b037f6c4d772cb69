// The forwarding path of `/ws/runner` streams: the gateway reads only the
// request head and the response head, and pipes every other byte as it is.
//
// Why not Node's HTTP server and client as on /k8s/clusters: a runner's mux
// stream carries exactly one request and the agent's stream exactly one
// response, so the gateway needs neither keep-alive framing nor body
// parsing. Parsing and re-encoding both sides cost a WATCH about 40 KB of
// gateway memory (10,000 watches: ~400 MB) and every relayed byte two HTTP
// codec passes; splicing costs two mux streams and a closure.
import type { Duplex } from 'node:stream';

/** Largest request head the gateway reads from a runner stream (bytes); beyond it → 431-style 400 Status. */
export const MAX_REQUEST_HEAD_BYTES = 32 * 1024;
/** Largest response head read from an agent stream (bytes); beyond it → 502 Status. */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

const HEAD_END = Buffer.from('\r\n\r\n');
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/;

/** A parsed request head: the request line, and the header lines as they came. */
export interface RequestHead {
  method: string;
  target: string;
  requestLine: string;
  /** `[name, value]` in order, names as sent. */
  headers: Array<[string, string]>;
}

/**
 * Reads from `stream` (after the bytes of `initial`, already read) until a
 * blank line; resolves with the head (without the blank line) and what came
 * after it, the stream paused.
 */
export function readHead(stream: Duplex, limit: number, initial: Buffer = Buffer.alloc(0)): Promise<{ head: string; rest: Buffer }> {
  const end = initial.indexOf(HEAD_END);
  if (end !== -1) {
    return end > limit ? Promise.reject(new HeadError('too-large')) : Promise.resolve({ head: initial.toString('latin1', 0, end), rest: initial.subarray(end + 4) });
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
        if (buffered.length > limit) { cleanup(); stream.pause(); reject(new HeadError('too-large')); }
        return;
      }
      cleanup();
      stream.pause();
      if (end > limit) { reject(new HeadError('too-large')); return; }
      resolve({ head: buffered.toString('latin1', 0, end), rest: buffered.subarray(end + 4) });
    };
    const onEnd = (): void => { cleanup(); reject(new HeadError('closed')); };
    const onError = (err: Error): void => { cleanup(); reject(err); };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
    stream.resume();
  });
}

/** Why a head could not be read: the peer closed first, or it is larger than allowed. */
export class HeadError extends Error {
  readonly why: 'closed' | 'too-large';
  constructor(why: 'closed' | 'too-large') {
    super(why === 'closed' ? 'the stream ended before a complete head' : 'head too large');
    this.why = why;
  }
}

/** Parses a request head strictly (no obs-fold, token names); undefined when malformed. */
export function parseRequestHead(head: string): RequestHead | undefined {
  const lines = head.split('\r\n');
  const m = REQUEST_LINE.exec(lines[0] ?? '');
  if (m === null) return undefined;
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    const h = HEADER_LINE.exec(line);
    if (h === null) return undefined;
    headers.push([h[1]!, h[2]!]);
  }
  return { method: m[1]!, target: m[2]!, requestLine: lines[0]!, headers };
}

/** The status code of a response head's first line; undefined when it is not one. */
export function statusOf(head: string): number | undefined {
  const first = head.slice(0, head.indexOf('\r\n') === -1 ? undefined : head.indexOf('\r\n'));
  const m = STATUS_LINE.exec(first);
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

/** The request head for the agent: the runner's, minus `Authorization` and any request id, plus ours. */
export function forwardedHead(r: RequestHead, requestIdHeader: string, requestId: string): Buffer {
  let out = `${r.requestLine}\r\n`;
  for (const [name, value] of r.headers) {
    const lower = name.toLowerCase();
    if (lower === 'authorization' || lower === requestIdHeader) continue;
    out += `${name}: ${value}\r\n`;
  }
  return Buffer.from(`${out}${requestIdHeader}: ${requestId}\r\n\r\n`, 'latin1');
}

/** The response head for the runner: the agent's, with the request id added after the status line. */
export function runnerResponseHead(head: string, requestIdHeader: string, requestId: string): Buffer {
  const eol = head.indexOf('\r\n');
  const statusLine = eol === -1 ? head : head.slice(0, eol);
  const rest = eol === -1 ? '' : head.slice(eol);
  return Buffer.from(`${statusLine}\r\n${requestIdHeader}: ${requestId}${rest}\r\n\r\n`, 'latin1');
}
