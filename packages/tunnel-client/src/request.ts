import { randomUUID } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { request as undiciRequest, type Dispatcher } from 'undici';
import { forwardRequestHeaders, headerList, headerRecord } from '@pipeops/tunnel-protocol';
import { ClientError } from './errors.ts';
import { RESUME_HEADER } from './resume/resume-plan.ts';

/** A request in the original VM agent's message shape (`/ws/k8s`), sent through the tunnel. */
export interface TunnelRequest {
  /** Echoed in the reply. Default: a random UUID. */
  id?: string;
  /** HTTP method, e.g. `GET`. */
  method: string;
  /** API server path, e.g. `/api/v1/namespaces/default/pods` (may carry its own `?query`). */
  path: string;
  /** Query parameters; repeated values as arrays (`{ watch: ['true'] }`). */
  query?: Record<string, string | string[]>;
  /** Request headers; hop-by-hop headers are dropped. */
  headers?: Record<string, string | string[]>;
  /** A string, Buffer or Uint8Array is sent as is; anything else as JSON (`content-type: application/json` unless set). */
  body?: unknown;
  /** Stream the response: WATCH events and log lines as they arrive. Default false. */
  stream?: boolean;
  /** Aborts the request (and the stream). */
  signal?: AbortSignal;
}

/** The reply to a non-streaming {@link TunnelRequest}. */
export interface TunnelResponse {
  id: string;
  status: number;
  headers: Record<string, string | string[]>;
  /** Parsed JSON when the response is JSON, else the text (empty string when there is no body). */
  body: unknown;
}

/**
 * The reply to a streaming {@link TunnelRequest}: status and headers, then
 * the chunks as an async iterable — one parsed object per WATCH event (JSON
 * responses), one string per line otherwise. Breaking out of the loop (or
 * `cancel()`) aborts the request; the agent then aborts the upstream call.
 */
export interface TunnelStreamResponse extends AsyncIterable<unknown> {
  id: string;
  status: number;
  headers: Record<string, string | string[]>;
  /** Stops the stream. Idempotent. */
  cancel(): void;
}

/** A Kubernetes watch event. */
export interface WatchEvent<T = Record<string, unknown>> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | (string & {});
  object: T;
}

/** Options of `tunnel.watch()`. */
export interface WatchOptions {
  /** Start from this resourceVersion. */
  resourceVersion?: string;
  /** Ask for BOOKMARK events. Default false. */
  allowWatchBookmarks?: boolean;
  /** Extra query parameters (labelSelector, fieldSelector, timeoutSeconds…). */
  query?: Record<string, string | string[]>;
  /** Stops the watch. */
  signal?: AbortSignal;
  /**
   * Resume the watch after a tunnel drop, from the last resourceVersion seen
   * (the connection's `resume` options bound the wait). Default true.
   */
  resume?: boolean;
}

/** Request headers undici computes itself, besides the hop-by-hop ones. */
const COMPUTED_HEADERS = new Set(['host', 'content-length']);

/** `path` with `query` appended. */
export function pathWithQuery(path: string, query: Record<string, string | string[]> | undefined): string {
  if (!path.startsWith('/')) throw new ClientError('PT_ERR_CLIENT_CONFIG', `request path must start with /: ${path}`);
  if (query === undefined) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) for (const one of Array.isArray(v) ? v : [v]) params.append(k, one);
  const qs = params.toString();
  if (qs === '') return path;
  return `${path}${path.includes('?') ? '&' : '?'}${qs}`;
}

function isJson(headers: Record<string, string | string[] | undefined>): boolean {
  const ct = headers['content-type'];
  return /\bjson\b/i.test(Array.isArray(ct) ? ct.join(',') : (ct ?? ''));
}

function plainHeaders(h: Dispatcher.ResponseData['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = v;
  return out;
}

/** Sends one {@link TunnelRequest} through `dispatcher` (whose origin is `origin`). */
export async function sendRequest(dispatcher: Dispatcher, origin: string, msg: TunnelRequest): Promise<TunnelResponse | TunnelStreamResponse> {
  const id = msg.id ?? randomUUID();
  // Names lower-cased, as undici sends them and as the content-type check below looks them up.
  const given = headerList(msg.headers).map((v, i) => (i % 2 === 0 ? v.toLowerCase() : v));
  const headers = headerRecord(forwardRequestHeaders(given, (lower) => COMPUTED_HEADERS.has(lower)));
  let body: string | Buffer | Uint8Array | undefined;
  if (msg.body === undefined || msg.body === null) body = undefined;
  else if (typeof msg.body === 'string' || msg.body instanceof Uint8Array) body = msg.body;
  else {
    body = JSON.stringify(msg.body);
    headers['content-type'] ??= 'application/json';
  }
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(msg.signal?.reason);
  if (msg.signal?.aborted === true) onAbort();
  else msg.signal?.addEventListener('abort', onAbort, { once: true });
  const res = await undiciRequest(new URL(pathWithQuery(msg.path, msg.query), origin), {
    dispatcher,
    method: msg.method.toUpperCase() as Dispatcher.HttpMethod,
    headers,
    body: body ?? null,
    signal: controller.signal,
    // A WATCH or a log follow may be quiet for minutes: no timeout between body chunks.
    ...(msg.stream === true ? { bodyTimeout: 0 } : {}),
  }).catch((err: unknown) => {
    msg.signal?.removeEventListener('abort', onAbort);
    throw err;
  });
  const resHeaders = plainHeaders(res.headers);
  const json = isJson(resHeaders);
  const readAll = async (): Promise<unknown> => {
    try {
      const text = await res.body.text();
      if (!json || text === '') return text;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return text;
      }
    } finally {
      msg.signal?.removeEventListener('abort', onAbort);
    }
  };
  if (msg.stream !== true) return { id, status: res.statusCode, headers: resHeaders, body: await readAll() };
  if (res.statusCode >= 300) {
    const errBody = await readAll();
    const reason =
      typeof errBody === 'object' && errBody !== null && typeof (errBody as { message?: unknown }).message === 'string'
        ? (errBody as { message: string }).message
        : `HTTP ${res.statusCode}`;
    throw new ClientError('PT_ERR_CLIENT_HTTP', `${msg.method} ${msg.path}: ${reason}`, { status: res.statusCode, body: errBody });
  }
  const cancel = (): void => {
    controller.abort();
    res.body.destroy();
  };
  async function* chunks(): AsyncGenerator<unknown> {
    const decoder = new StringDecoder('utf8');
    let pending = '';
    const parse = (line: string): unknown => {
      if (!json) return line;
      try {
        return JSON.parse(line) as unknown;
      } catch {
        return line;
      }
    };
    try {
      for await (const chunk of res.body) {
        pending += decoder.write(chunk as Buffer);
        let i: number;
        while ((i = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, i).replace(/\r$/, '');
          pending = pending.slice(i + 1);
          if (line !== '' || !json) yield parse(line);
        }
      }
      pending += decoder.end();
      if (pending !== '') yield parse(pending);
    } catch (err) {
      // A cancel() is how the caller stops: end quietly.
      if (!controller.signal.aborted || msg.signal?.aborted === true) throw err;
    } finally {
      msg.signal?.removeEventListener('abort', onAbort);
      if (!res.body.destroyed) cancel();
    }
  }
  const iterable = chunks();
  return {
    id,
    status: res.statusCode,
    headers: resHeaders,
    cancel,
    [Symbol.asyncIterator]: () => iterable,
  };
}

/** Iterates the WATCH events of `path` (`?watch=true`). */
export async function* watchEvents<T = Record<string, unknown>>(
  send: (msg: TunnelRequest) => Promise<TunnelResponse | TunnelStreamResponse>,
  path: string,
  options: WatchOptions = {},
): AsyncGenerator<WatchEvent<T>> {
  const query: Record<string, string | string[]> = { ...options.query, watch: 'true' };
  if (options.resourceVersion !== undefined) query.resourceVersion = options.resourceVersion;
  if (options.allowWatchBookmarks === true) query.allowWatchBookmarks = 'true';
  const res = (await send({
    method: 'GET',
    path,
    query,
    headers: { accept: 'application/json', ...(options.resume === false ? { [RESUME_HEADER]: 'off' } : {}) },
    stream: true,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  })) as TunnelStreamResponse;
  for await (const chunk of res) {
    if (typeof chunk === 'object' && chunk !== null && typeof (chunk as { type?: unknown }).type === 'string') yield chunk as WatchEvent<T>;
  }
}
