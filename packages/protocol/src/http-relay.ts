// The relays: a runner's request (or upgrade) forwarded over a stream opened
// per request, the answer streamed back. Built on ./http-over-stream.ts.
import { STATUS_CODES } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream';
import { DENIED_BY_HEADER, deniedByRule, type AuditDenyRule } from './audit.ts';
import { statusReason } from './kube-status.ts';
import { HOP_BY_HOP_HEADERS, abortReason, requestOverStream, type StreamRequest, type StreamResponse } from './http-over-stream.ts';

/** Options of {@link relayRequest} and {@link relayUpgrade}. */
export interface RelayOptions {
  /** Origin-form target to send upstream (query included). */
  path: string;
  /** Headers set (replacing any the runner sent) on the forwarded request. */
  setHeaders?: Record<string, string>;
  /** Header names (any case) removed from the forwarded request, e.g. `authorization`. */
  dropHeaders?: string[];
  /** Headers added to the response written back (also to error responses). */
  responseHeaders?: Record<string, string>;
  /** Time allowed from `open()` to the upstream response head, in ms; over it → 504. Default 0 = no limit. */
  headTimeoutMs?: number;
  /** Body of the relay's own error responses (502, 504, or an `open()` failure's `status`). Default: text/plain `message`. */
  errorResponse?: (status: number, reason: string, message: string) => { contentType: string; body: string | Buffer };
}

/** What a relay did, for the log line. */
export interface RelayResult {
  /** Status sent to the runner (499 when the runner went away before a head). */
  status: number;
  /** Body bytes from the runner (for an upgrade: raw bytes runner → upstream). */
  bytesIn: number;
  /** Body bytes to the runner (for an upgrade: raw bytes upstream → runner). */
  bytesOut: number;
  upgraded: boolean;
  /** Set when the exchange did not complete normally. */
  error?: Error;
  /** The agent refused the request itself, by this rule (its `x-pipeops-denied-by` response header). */
  deniedBy?: AuditDenyRule;
}


/** Error thrown when the head does not arrive within `headTimeoutMs`. */
export class HeadTimeoutError extends Error {
  readonly status = 504;
  constructor(ms: number) { super(`the agent did not answer within ${ms} ms`); this.name = 'HeadTimeoutError'; }
}

/** The runner closed its connection; nothing can be written back. */
class RunnerGoneError extends Error {
  constructor() { super('the runner went away'); this.name = 'RunnerGoneError'; }
}

/**
 * Relays a request an http server received to a fresh stream from `open()`
 * and writes the answer back byte-faithful: status, raw headers minus
 * hop-by-hop, body chunk by chunk with backpressure (each chunk is written
 * as it arrives: WATCH events are not held back), trailers. The runner going
 * away destroys the stream; a stream failure destroys the response (or, with
 * no head sent yet, answers 502/504 through `errorResponse`). Never rejects.
 */
export async function relayRequest(req: IncomingMessage, res: ServerResponse, open: () => Promise<Duplex>, opts: RelayOptions): Promise<RelayResult> {
  const result: RelayResult = { status: 0, bytesIn: 0, bytesOut: 0, upgraded: false };
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  const headers = forwardHeaders(req, opts, false);
  const runnerGone = new AbortController();
  const onResClose = (): void => { if (!res.writableFinished) runnerGone.abort(new RunnerGoneError()); };
  res.once('close', onResClose);
  let answer: StreamResponse;
  try {
    const body = hasBody ? req : undefined;
    answer = await obtainHead(open, { method: req.method ?? 'GET', path: opts.path, headers, body }, opts, runnerGone.signal, () => {
      // Counted from when the body starts flowing into the stream (a listener before that would drop bytes).
      body?.on('data', (c: Buffer) => { result.bytesIn += c.length; });
    });
  } catch (err) {
    return finishWithError(result, err as Error, (status, reason, message) => writeError(res, status, reason, message, opts));
  }
  if (answer.upgraded) {
    answer.socket.destroy();
    return finishWithError(result, new Error('the agent switched protocols on a plain request'), (s, r, m) => writeError(res, s, r, m, opts));
  }
  const up = answer.response;
  if (up.destroyed && !up.complete) {
    // The stream failed in the ticks between the head and now: nothing was sent yet, so say so.
    return finishWithError(result, new Error('the upstream response was cut short'), (s, r, m) => writeError(res, s, r, m, opts));
  }
  result.status = up.statusCode ?? 502;
  const deniedBy = deniedByRule(up.headers[DENIED_BY_HEADER] as string | undefined);
  if (deniedBy !== undefined) result.deniedBy = deniedBy;
  const outHeaders = responseHeaderList(up.rawHeaders, false, opts.responseHeaders);
  const declaresTrailers = up.headers.trailer !== undefined && up.headers['content-length'] === undefined;
  if (declaresTrailers) outHeaders.push('Trailer', String(up.headers.trailer));
  res.writeHead(result.status, up.statusMessage, outHeaders);
  if (typeof res.flushHeaders === 'function') res.flushHeaders();
  return new Promise<RelayResult>((resolve) => {
    up.on('data', (chunk: Buffer) => {
      result.bytesOut += chunk.length;
      if (!res.write(chunk)) {
        up.pause();
        res.once('drain', () => up.resume());
      }
    });
    up.on('end', () => {
      if (up.rawTrailers.length > 0) res.addTrailers(pairs(up.rawTrailers));
      res.end();
    });
    up.on('error', () => { /* handled on 'close' */ });
    up.once('close', () => {
      if (!up.complete) {
        result.error ??= new Error('the upstream response was cut short');
        res.destroy(result.error);
      }
    });
    res.off('close', onResClose);
    res.once('close', () => {
      if (!res.writableFinished) {
        result.error ??= new RunnerGoneError();
        answer.response.socket?.destroy();
        up.destroy();
      }
      resolve(result);
    });
  });
}

/**
 * Relays an `'upgrade'` request: on `101` the head is written to `socket`,
 * then raw bytes are piped both ways with half-close (FIN of one direction
 * ends only that direction). Any other answer is written back as a
 * close-delimited response. Never rejects.
 */
export async function relayUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, open: () => Promise<Duplex>, opts: RelayOptions): Promise<RelayResult> {
  const result: RelayResult = { status: 0, bytesIn: 0, bytesOut: 0, upgraded: false };
  const headers = forwardHeaders(req, opts, true);
  const runnerGone = new AbortController();
  const onSocketClose = (): void => runnerGone.abort(new RunnerGoneError());
  socket.once('close', onSocketClose);
  socket.on('error', () => { /* 'close' follows */ });
  let answer: StreamResponse;
  try {
    answer = await obtainHead(open, { method: req.method ?? 'GET', path: opts.path, headers }, opts, runnerGone.signal);
  } catch (err) {
    return finishWithError(result, err as Error, (status, reason, message) => {
      const e = errorBody(status, reason, message, opts);
      writeRawHead(socket, status, STATUS_CODES[status] ?? 'Error',
        ['Content-Type', e.contentType, 'Content-Length', String(e.body.length), 'Connection', 'close', ...headerList(opts.responseHeaders)]);
      socket.end(e.body);
    });
  }
  socket.off('close', onSocketClose);
  const up = answer.response;
  result.status = up.statusCode ?? 502;
  const deniedBy = deniedByRule(up.headers[DENIED_BY_HEADER] as string | undefined);
  if (deniedBy !== undefined) result.deniedBy = deniedBy;
  if (!answer.upgraded) {
    writeRawHead(socket, result.status, up.statusMessage ?? '', [...responseHeaderList(up.rawHeaders, false, opts.responseHeaders), 'Connection', 'close']);
    return new Promise<RelayResult>((resolve) => {
      up.on('data', (c: Buffer) => { result.bytesOut += c.length; });
      up.on('error', () => { /* 'close' follows */ });
      pipeline(up, socket, (err) => {
        if (err) result.error = err;
        resolve(result);
      });
    });
  }
  const upstream = answer.socket;
  if (upstream.destroyed) {
    return finishWithError(result, new Error('the upstream closed right after switching protocols'), (status, reason, message) => {
      socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`);
    });
  }
  result.upgraded = true;
  // A TLS server socket is not half-open by default: its 'end' would end our write side too, and the
  // upstream's last bytes after the runner's FIN (exec's exit status, SPDY's goodbye) would be lost.
  if ('allowHalfOpen' in socket) (socket as { allowHalfOpen: boolean }).allowHalfOpen = true;
  writeRawHead(socket, result.status, up.statusMessage ?? 'Switching Protocols', responseHeaderList(up.rawHeaders, true, opts.responseHeaders));
  if (answer.head.length > 0) { result.bytesOut += answer.head.length; socket.write(answer.head); }
  if (head.length > 0) { result.bytesIn += head.length; upstream.write(head); }
  return new Promise<RelayResult>((resolve) => {
    let closed = 0;
    const onClose = (): void => { if (++closed === 2) resolve(result); };
    splice(socket, upstream, (n) => { result.bytesIn += n; }, (err) => { result.error ??= err; });
    splice(upstream, socket, (n) => { result.bytesOut += n; }, (err) => { result.error ??= err; });
    socket.once('close', onClose);
    upstream.once('close', onClose);
  });
}

/**
 * Pipes `from` → `to` with backpressure; FIN of `from` ends `to` (or runs
 * `onEnd` instead); an abnormal close of `from` destroys `to`.
 */
export function splice(from: Duplex, to: Duplex, count: (n: number) => void, failed: (err: Error) => void, onEnd?: () => void): void {
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  const ended = (): void => {
    if (onEnd !== undefined) onEnd();
    else if (!to.destroyed) to.end();
  };
  // A FIN that came with the head (read before the splice began) has already ended `from`.
  if (from.readableEnded) process.nextTick(ended);
  else from.once('end', ended);
  from.on('error', (err) => { failed(err); to.destroy(); });
  from.once('close', () => { if (!from.readableEnded) { failed(new Error('connection closed abruptly')); to.destroy(); } });
}

/** Opens the stream and waits for the response head, bounded by `headTimeoutMs`, aborted when the runner goes away. */
async function obtainHead(open: () => Promise<Duplex>, req: StreamRequest, opts: RelayOptions, runnerGone: AbortSignal, onSend?: () => void): Promise<StreamResponse> {
  const ac = new AbortController();
  const abort = (): void => ac.abort(runnerGone.reason);
  runnerGone.addEventListener('abort', abort, { once: true });
  const timeoutMs = opts.headTimeoutMs ?? 0;
  const timer = timeoutMs > 0 ? setTimeout(() => ac.abort(new HeadTimeoutError(timeoutMs)), timeoutMs) : undefined;
  try {
    const aborted = new Promise<never>((_, reject) => {
      if (ac.signal.aborted) reject(abortReason(ac.signal));
      ac.signal.addEventListener('abort', () => reject(abortReason(ac.signal)), { once: true });
    });
    aborted.catch(() => {});
    const opening = open();
    const stream = await Promise.race([opening, aborted]).catch((err: unknown) => {
      opening.then((s) => s.destroy(), () => {});
      throw err;
    });
    if (ac.signal.aborted) { stream.destroy(); throw abortReason(ac.signal); }
    const answer = requestOverStream(stream, { ...req, signal: ac.signal });
    onSend?.();
    return await answer;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    runnerGone.removeEventListener('abort', abort);
  }
}

/**
 * The status and message a relay answers for an error before the response
 * head: the error's own `status` (4xx/5xx, e.g. 503 from the opener when no
 * agent is connected), 504 for a head timeout or a stream the agent did not
 * accept in time, else 502.
 */
export function relayErrorStatus(err: Error): { status: number; reason: string; message: string } {
  const code = (err as { code?: unknown }).code;
  const given = (err as { status?: unknown }).status;
  let status = typeof given === 'number' && given >= 400 && given <= 599 ? given : 502;
  let message = err instanceof HeadTimeoutError || typeof given === 'number' ? err.message : `the tunnel stream failed: ${err.message}`;
  if (code === 'PT_ERR_MUX_OPEN_TIMEOUT') { status = 504; message = 'the agent did not accept the stream in time'; }
  return { status, reason: statusReason(status), message };
}

function finishWithError(result: RelayResult, err: Error, write: (status: number, reason: string, message: string) => void): RelayResult {
  result.error = err;
  if (err instanceof RunnerGoneError) { result.status = 499; return result; }
  const { status, reason, message } = relayErrorStatus(err);
  result.status = status;
  write(status, reason, message);
  return result;
}

function writeError(res: ServerResponse, status: number, reason: string, message: string, opts: RelayOptions): void {
  if (res.headersSent) { res.destroy(); return; }
  const e = errorBody(status, reason, message, opts);
  res.writeHead(status, { ...opts.responseHeaders, 'content-type': e.contentType, 'content-length': e.body.length });
  res.end(e.body);
}

function errorBody(status: number, reason: string, message: string, opts: RelayOptions): { contentType: string; body: Buffer } {
  const e = opts.errorResponse?.(status, reason, message) ?? { contentType: 'text/plain; charset=utf-8', body: `${message}\n` };
  return { contentType: e.contentType, body: Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body, 'utf8') };
}

/** The runner's headers for the upstream request: hop-by-hop, `dropHeaders` and replaced names removed; `setHeaders` added. */
function forwardHeaders(req: IncomingMessage, opts: RelayOptions, upgrade: boolean): Record<string, string | string[]> {
  const drop = new Set([...(opts.dropHeaders ?? []), ...Object.keys(opts.setHeaders ?? {})].map((h) => h.toLowerCase()));
  drop.add('expect'); // the runner's server already answered any 100-continue
  for (const token of connectionTokens(req.headers.connection)) drop.add(token);
  const out: Record<string, string | string[]> = {};
  const names = new Map<string, string>();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    if (isHopByHop(lower) || drop.has(lower)) continue;
    const key = names.get(lower);
    if (key === undefined) { names.set(lower, name); out[name] = value; continue; }
    const prev = out[key] as string | string[];
    out[key] = Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  if (req.headers['transfer-encoding'] !== undefined && req.headers['content-length'] === undefined) out['Transfer-Encoding'] = 'chunked';
  if (upgrade) {
    out.Connection = 'Upgrade';
    if (req.headers.upgrade !== undefined) out.Upgrade = req.headers.upgrade;
  }
  return { ...out, ...opts.setHeaders };
}

/** Upstream response headers (flat raw list) for the runner: hop-by-hop removed (kept `connection`/`upgrade` on a 101), `extra` replacing same-named ones. */
function responseHeaderList(raw: string[], switching: boolean, extra: Record<string, string> | undefined): string[] {
  const replaced = new Set(Object.keys(extra ?? {}).map((h) => h.toLowerCase()));
  const listed = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) if ((raw[i] as string).toLowerCase() === 'connection') for (const t of connectionTokens(raw[i + 1])) listed.add(t);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = (raw[i] as string).toLowerCase();
    if (replaced.has(lower)) continue;
    if (switching && (lower === 'connection' || lower === 'upgrade')) { out.push(raw[i] as string, raw[i + 1] as string); continue; }
    if (isHopByHop(lower) || listed.has(lower)) continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  return [...out, ...headerList(extra)];
}

function isHopByHop(lower: string): boolean {
  return HOP_BY_HOP_HEADERS.has(lower) || lower.startsWith('proxy-');
}

function connectionTokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value.join(',') : value).split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '' && t !== 'close' && t !== 'upgrade' && t !== 'keep-alive');
}

function headerList(h: Record<string, string> | undefined): string[] {
  return Object.entries(h ?? {}).flat();
}

function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

function writeRawHead(socket: Duplex, status: number, message: string, flat: string[]): void {
  let head = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i + 1 < flat.length; i += 2) head += `${flat[i]}: ${flat[i + 1]}\r\n`;
  socket.write(`${head}\r\n`);
}
