// The relays: a runner's request (or upgrade) forwarded over a stream opened
// per request, the answer streamed back. A plain request is written and its
// answer read by hand (./http-plain-relay.ts); an upgrade still goes through
// Node's HTTP client over the stream (./http-over-stream.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream';
import { DENIED_BY_HEADER, deniedByRule, type AuditDenyRule } from './audit.ts';
import { RunnerGoneError } from './errors.ts';
import { openExchange } from './exchange-open.ts';
import { closingResponse, headBytes, statusLine } from './http-head.ts';
import { headerList, headerRecord, relayResponseHeaders, type ResponseRelay } from './http-headers.ts';
import { relayErrorStatus } from './kube-status.ts';
import { requestOverStream, type StreamRequest, type StreamResponse } from './http-over-stream.ts';
import { answerDeniedBy, forwardedRequestHeaders, pipeAnswer, relayPlain } from './http-plain-relay.ts';
import { answerAndClose } from './raw-answer.ts';
import { splice, whenBothClosed } from './splice.ts';

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
  const runnerGone = new AbortController();
  const onResClose = (): void => {
    if (!res.writableFinished) runnerGone.abort(new RunnerGoneError());
  };
  res.once('close', onResClose);
  const answer = await relayPlain(req, open, opts, runnerGone.signal, result);
  if ('error' in answer)
    return finishWithError(result, answer.error, (status, reason, message, headers) => writeError(res, status, reason, message, opts, headers));
  const { head, stream, body } = answer;
  if (head.status === 101) {
    stream.destroy();
    return finishWithError(result, new Error('the agent switched protocols on a plain request'), (s, r, m, h) => writeError(res, s, r, m, opts, h));
  }
  if (stream.destroyed && stream.errored !== null && body.framing !== 'none') {
    // The stream failed in the ticks between the head and now: nothing was sent yet, so say so.
    return finishWithError(result, new Error('the upstream response was cut short'), (s, r, m, h) => writeError(res, s, r, m, opts, h));
  }
  result.status = head.status;
  const deniedBy = answerDeniedBy(head);
  if (deniedBy !== undefined) result.deniedBy = deniedBy;
  // Trailers are relayed on a chunked answer, and then the header that announces them stays.
  const outHeaders = responseHeaderList(head.headers, { trailers: body.framing === 'chunked' }, opts.responseHeaders);
  if (head.reason !== '') res.writeHead(result.status, head.reason, outHeaders);
  else res.writeHead(result.status, outHeaders);
  // The head leaves at once (a WATCH's head must not wait for its first event). When the whole body is
  // already here (a small answer), the runner's socket stays corked for this turn: one write for both.
  const socket = res.socket;
  if (body.framing === 'length' && body.rest.length >= body.length && socket !== null) {
    socket.cork();
    setImmediate(() => socket.uncork());
  }
  if (typeof res.flushHeaders === 'function') res.flushHeaders();
  return new Promise<RelayResult>((resolve) => {
    res.off('close', onResClose);
    res.once('close', () => {
      if (!res.writableFinished) {
        result.error ??= new RunnerGoneError();
        stream.destroy();
      }
      resolve(result);
    });
    pipeAnswer(stream, body, res, result);
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
  const headers = upgradeHeaders(req, opts);
  const runnerGone = new AbortController();
  const onSocketClose = (): void => runnerGone.abort(new RunnerGoneError());
  socket.once('close', onSocketClose);
  socket.on('error', () => {
    /* 'close' follows */
  });
  let answer: StreamResponse;
  try {
    answer = await obtainHead(open, { method: req.method ?? 'GET', path: opts.path, headers }, opts, runnerGone.signal);
  } catch (err) {
    return finishWithError(result, err as Error, (status, reason, message, extra) => {
      const e = errorBody(status, reason, message, opts);
      answerAndClose(socket, closingResponse(status, e.contentType, e.body, headerList({ ...opts.responseHeaders, ...extra })));
    });
  }
  socket.off('close', onSocketClose);
  const up = answer.response;
  result.status = up.statusCode ?? 502;
  const deniedBy = deniedByRule(up.headers[DENIED_BY_HEADER] as string | undefined);
  if (deniedBy !== undefined) result.deniedBy = deniedBy;
  if (!answer.upgraded) {
    socket.write(
      headBytes(statusLine(result.status, up.statusMessage ?? ''), [...responseHeaderList(up.rawHeaders, {}, opts.responseHeaders), 'Connection', 'close']),
    );
    return new Promise<RelayResult>((resolve) => {
      up.on('data', (c: Buffer) => {
        result.bytesOut += c.length;
      });
      up.on('error', () => {
        /* 'close' follows */
      });
      pipeline(up, socket, (err) => {
        if (err) result.error = err;
        // The answer was `Connection: close`: once it is out, so is the connection (the runner's FIN may never come).
        socket.destroy();
        resolve(result);
      });
    });
  }
  const upstream = answer.socket;
  if (upstream.destroyed) {
    return finishWithError(result, new Error('the upstream closed right after switching protocols'), (status, reason, message, extra) => {
      const e = errorBody(status, reason, message, opts);
      answerAndClose(socket, closingResponse(status, e.contentType, e.body, headerList({ ...opts.responseHeaders, ...extra })));
    });
  }
  result.upgraded = true;
  // A TLS server socket is not half-open by default: its 'end' would end our write side too, and the
  // upstream's last bytes after the runner's FIN (exec's exit status, SPDY's goodbye) would be lost.
  if ('allowHalfOpen' in socket) (socket as { allowHalfOpen: boolean }).allowHalfOpen = true;
  socket.write(
    headBytes(
      statusLine(result.status, up.statusMessage ?? 'Switching Protocols'),
      responseHeaderList(up.rawHeaders, { switching: true }, opts.responseHeaders),
    ),
  );
  if (answer.head.length > 0) {
    result.bytesOut += answer.head.length;
    socket.write(answer.head);
  }
  if (head.length > 0) {
    result.bytesIn += head.length;
    upstream.write(head);
  }
  splice(socket, upstream, result, 'bytesIn');
  splice(upstream, socket, result, 'bytesOut');
  return whenBothClosed(socket, upstream, result);
}

/** Opens the stream and waits for the response head, bounded by `headTimeoutMs`, aborted when the runner goes away. */
async function obtainHead(open: () => Promise<Duplex>, req: StreamRequest, opts: RelayOptions, runnerGone: AbortSignal): Promise<StreamResponse> {
  const exchange = openExchange(open, runnerGone, opts.headTimeoutMs ?? 0);
  try {
    return await requestOverStream(await exchange.stream, { ...req, signal: exchange.signal });
  } finally {
    exchange.disarm();
  }
}

type ErrorWriter = (status: number, reason: string, message: string, headers: Record<string, string>) => void;

function finishWithError(result: RelayResult, err: Error, write: ErrorWriter): RelayResult {
  result.error = err;
  if (err instanceof RunnerGoneError) {
    result.status = 499;
    return result;
  }
  const { status, reason, message, headers } = relayErrorStatus(err);
  result.status = status;
  write(status, reason, message, headers);
  return result;
}

function writeError(res: ServerResponse, status: number, reason: string, message: string, opts: RelayOptions, headers: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const e = errorBody(status, reason, message, opts);
  res.writeHead(status, { ...opts.responseHeaders, ...headers, 'content-type': e.contentType, 'content-length': e.body.length });
  res.end(e.body);
}

function errorBody(status: number, reason: string, message: string, opts: RelayOptions): { contentType: string; body: Buffer } {
  const e = opts.errorResponse?.(status, reason, message) ?? { contentType: 'text/plain; charset=utf-8', body: `${message}\n` };
  return { contentType: e.contentType, body: Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body, 'utf8') };
}

/** The runner's headers for an upgrade (see forwardedRequestHeaders), with `Connection: Upgrade` and its `Upgrade`. */
function upgradeHeaders(req: IncomingMessage, opts: RelayOptions): Record<string, string | string[]> {
  const out = headerRecord(forwardedRequestHeaders(req, opts));
  if (req.headers['transfer-encoding'] !== undefined && req.headers['content-length'] === undefined) out['Transfer-Encoding'] = 'chunked';
  out.Connection = 'Upgrade';
  if (req.headers.upgrade !== undefined) out.Upgrade = req.headers.upgrade;
  return out;
}

/** Upstream response headers (flat raw list) for the runner, relayed as `relay` says, `extra` replacing same-named ones. */
function responseHeaderList(raw: string[], relay: ResponseRelay, extra: Record<string, string> | undefined): string[] {
  const out = relayResponseHeaders(raw, relay);
  if (extra === undefined) return out;
  // `extra` is a name or two (the request id): each replaces the headers of its name, in place of a Set and copies.
  for (const [name, value] of Object.entries(extra)) {
    const lower = name.toLowerCase();
    let kept = 0;
    for (let i = 0; i + 1 < out.length; i += 2) {
      if (out[i]!.toLowerCase() === lower) continue;
      out[kept++] = out[i]!;
      out[kept++] = out[i + 1]!;
    }
    out.length = kept;
    out.push(name, value);
  }
  return out;
}
