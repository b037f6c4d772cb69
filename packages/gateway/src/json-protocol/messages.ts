// Parsing and validation of the runner's messages (the original VM agent's
// runner protocol). Nothing here throws: every outcome is a value the
// connection turns into a request, a cancel, or an error message for one id.
import { TunnelError } from '@pipeops/tunnel-protocol';
import { encodeJson } from './safe-json.ts';

/** A runner-chosen request id: a non-empty string (at most 256 characters) or a safe integer. Echoed back as given. */
export type MessageId = string | number;

/** A validated request message. */
export interface JsonRequest {
  id: MessageId;
  /** Upper-cased HTTP method token. */
  method: string;
  /** Origin-form path (may already carry a query string). */
  path: string;
  query: Record<string, string[]>;
  /** Lower-cased names; runner `Authorization` and hop-by-hop headers are not removed here (see the exchange). */
  headers: Record<string, string[]>;
  /** Request body bytes, if any. */
  body: Buffer | undefined;
  /** True when `body` was a JSON object/array (sent with `Content-Type: application/json` unless the runner set one). */
  bodyIsJson: boolean;
  stream: boolean;
}

/** What one text message is. */
export type ParsedMessage =
  | { kind: 'request'; request: JsonRequest }
  | { kind: 'cancel'; id: MessageId }
  | { kind: 'invalid'; id: MessageId | null; code: InvalidCode; message: string };

/** The codes {@link parseMessage} answers bad input with. */
export type InvalidCode = 'PT_ERR_JSON_MALFORMED' | 'PT_ERR_JSON_INVALID_REQUEST' | 'PT_ERR_JSON_TOO_DEEP';

const KNOWN_FIELDS = new Set(['id', 'method', 'path', 'query', 'headers', 'body', 'bodyEncoding', 'stream', 'cancel']);
// RFC 9110 §5.6.2 token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Origin-form, visible ASCII only (non-ASCII must be percent-encoded); no fragment.
const ORIGIN_FORM = /^\/(?!\/)[\x21-\x22\x24-\x7e]*$/;
// RFC 9110 §5.5 field value: no CR, LF or NUL.
const BAD_HEADER_VALUE = /[\r\n\0]/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_ID_CHARS = 256;
const MAX_METHOD_CHARS = 32;

class Invalid extends TunnelError {
  declare readonly code: InvalidCode;
  constructor(message: string, code: InvalidCode = 'PT_ERR_JSON_INVALID_REQUEST') {
    super(code, message);
  }
}

/** Parses one text message. */
export function parseMessage(text: string): ParsedMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { kind: 'invalid', id: null, code: 'PT_ERR_JSON_MALFORMED', message: `message is not valid JSON: ${(err as Error).message}` };
  }
  if (!isPlainObject(value)) {
    return { kind: 'invalid', id: null, code: 'PT_ERR_JSON_INVALID_REQUEST', message: 'message: must be a JSON object' };
  }
  const idResult = readId(value.id);
  if (!idResult.ok) return { kind: 'invalid', id: null, code: 'PT_ERR_JSON_INVALID_REQUEST', message: idResult.message };
  const id = idResult.id;
  try {
    checkUnknownFields(value);
    const cancel = value.cancel;
    if (cancel !== undefined && typeof cancel !== 'boolean') throw new Invalid('cancel: must be a boolean');
    if (cancel === true) return { kind: 'cancel', id };
    return { kind: 'request', request: readRequest(id, value) };
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    return { kind: 'invalid', id, code: err.code, message: err.message };
  }
}

function readId(v: unknown): { ok: true; id: MessageId } | { ok: false; message: string } {
  if (v === undefined || v === null) return { ok: false, message: 'id: required' };
  if (typeof v === 'string') {
    if (v.length === 0 || v.length > MAX_ID_CHARS) return { ok: false, message: `id: must be 1 to ${MAX_ID_CHARS} characters` };
    return { ok: true, id: v };
  }
  if (typeof v === 'number' && Number.isSafeInteger(v)) return { ok: true, id: v };
  return { ok: false, message: 'id: must be a string or a safe integer' };
}

// Unknown fields are ignored when they hold a scalar (forward compatibility,
// client metadata such as "type" or "timeout"). One holding an object or
// array is refused: it is most likely a misspelt known field ("header",
// "querry"), and dropping it would send a different request than meant.
function checkUnknownFields(o: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(o)) {
    if (KNOWN_FIELDS.has(k)) continue;
    if (v !== null && typeof v === 'object') throw new Invalid(`${k}: unknown field with an object or array value`);
  }
}

function readRequest(id: MessageId, o: Record<string, unknown>): JsonRequest {
  if (typeof o.method !== 'string') throw new Invalid('method: required, must be a string');
  const method = o.method.toUpperCase();
  if (method.length > MAX_METHOD_CHARS || !TOKEN.test(method)) throw new Invalid('method: must be an HTTP method token');
  if (method === 'CONNECT') throw new Invalid('method: CONNECT is not allowed');
  if (typeof o.path !== 'string') throw new Invalid('path: required, must be a string');
  if (!ORIGIN_FORM.test(o.path)) throw new Invalid("path: must start with a single '/' and contain only visible ASCII (percent-encode the rest), no '#'");
  if (o.stream !== undefined && typeof o.stream !== 'boolean') throw new Invalid('stream: must be a boolean');
  const { body, bodyIsJson } = readBody(o.body, o.bodyEncoding);
  return {
    id,
    method,
    path: o.path,
    query: readQuery(o.query),
    headers: readHeaders(o.headers),
    body,
    bodyIsJson,
    stream: o.stream === true,
  };
}

function readQuery(v: unknown): Record<string, string[]> {
  const out = dict();
  if (v === undefined || v === null) return out;
  if (!isPlainObject(v)) throw new Invalid('query: must be an object mapping names to arrays of strings');
  for (const [k, values] of Object.entries(v)) {
    if (k.length === 0) throw new Invalid('query: names must not be empty');
    if (!Array.isArray(values) || !values.every((x) => typeof x === 'string')) {
      throw new Invalid(`query.${k}: must be an array of strings`);
    }
    out[k] = values as string[];
  }
  return out;
}

function readHeaders(v: unknown): Record<string, string[]> {
  const out = dict();
  if (v === undefined || v === null) return out;
  if (!isPlainObject(v)) throw new Invalid('headers: must be an object mapping names to a string or an array of strings');
  for (const [name, value] of Object.entries(v)) {
    if (!TOKEN.test(name)) throw new Invalid(`headers: ${JSON.stringify(name.slice(0, 64))} is not a valid header name`);
    const values = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(values) || !values.every((x) => typeof x === 'string')) {
      throw new Invalid(`headers.${name}: must be a string or an array of strings`);
    }
    if (values.some((x: string) => BAD_HEADER_VALUE.test(x))) throw new Invalid(`headers.${name}: value contains CR, LF or NUL`);
    const lower = name.toLowerCase();
    (out[lower] ??= []).push(...(values as string[]));
  }
  return out;
}

function readBody(v: unknown, encoding: unknown): { body: Buffer | undefined; bodyIsJson: boolean } {
  if (encoding !== undefined && encoding !== 'utf8' && encoding !== 'base64') throw new Invalid("bodyEncoding: must be 'utf8' or 'base64'");
  if (v === undefined || v === null) return { body: undefined, bodyIsJson: false };
  if (typeof v === 'string') {
    if (encoding === 'base64') {
      if (v.length % 4 !== 0 || !BASE64.test(v)) throw new Invalid('body: not valid base64');
      return { body: Buffer.from(v, 'base64'), bodyIsJson: false };
    }
    return { body: Buffer.from(v, 'utf8'), bodyIsJson: false };
  }
  if (encoding === 'base64') throw new Invalid('body: must be a string when bodyEncoding is base64');
  if (typeof v === 'object') {
    const text = encodeJson(v);
    if (text === undefined) throw new Invalid('body: nested too deeply to be encoded as JSON', 'PT_ERR_JSON_TOO_DEEP');
    return { body: Buffer.from(text, 'utf8'), bodyIsJson: true };
  }
  throw new Invalid('body: must be a string, an object or an array');
}

// Prototype-less, so a runner-supplied "__proto__" name is just a name.
function dict(): Record<string, string[]> {
  return Object.create(null) as Record<string, string[]>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `path` with `query` appended (names and values percent-encoded; repeated values kept in order). */
export function targetOf(req: Pick<JsonRequest, 'path' | 'query'>): string {
  const parts: string[] = [];
  for (const [k, values] of Object.entries(req.query)) {
    for (const v of values) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  }
  if (parts.length === 0) return req.path;
  return `${req.path}${req.path.includes('?') ? '&' : '?'}${parts.join('&')}`;
}
