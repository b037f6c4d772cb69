// undici takes request headers in several shapes (a record, a flat
// [name, value, …] list, a list or iterable of [name, value] pairs). The
// resume layer reads two of them (`accept`, `x-pipeops-resume`) and removes
// one; this keeps every other header exactly as the caller gave it.
import type { Dispatcher } from 'undici';

type Headers = Dispatcher.DispatchOptions['headers'];
type Value = string | string[] | undefined;

function text(v: unknown): string {
  return Buffer.isBuffer(v) ? v.toString('latin1') : Array.isArray(v) ? v.map(text).join(', ') : String(v);
}

/** The headers as [lower-case name, value] pairs (undefined values skipped). */
function pairs(headers: Headers): Array<[string, string]> {
  if (headers === null || headers === undefined) return [];
  const out: Array<[string, string]> = [];
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const [k, v] of headers as unknown as Array<[unknown, unknown]>) if (v !== undefined) out.push([text(k).toLowerCase(), text(v)]);
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) out.push([text(headers[i]).toLowerCase(), text(headers[i + 1])]);
    }
    return out;
  }
  const iterable = headers as Iterable<[string, Value]>;
  if (typeof iterable[Symbol.iterator] === 'function') {
    for (const [k, v] of iterable) if (v !== undefined) out.push([k.toLowerCase(), text(v)]);
    return out;
  }
  for (const [k, v] of Object.entries(headers as Record<string, Value>)) if (v !== undefined) out.push([k.toLowerCase(), text(v)]);
  return out;
}

/** The value of header `name` (any case; repeated values joined with `, `), or undefined. */
export function headerOf(headers: Headers, name: string): string | undefined {
  const found = pairs(headers).filter(([k]) => k === name);
  return found.length === 0 ? undefined : found.map(([, v]) => v).join(', ');
}

/** `headers` without header `name` (any case), in the shape they came in; the same object when it is absent. */
export function withoutHeader(headers: Headers, name: string): Headers {
  if (headers === null || headers === undefined || headerOf(headers, name) === undefined) return headers;
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      return (headers as unknown as Array<[unknown, unknown]>).filter(([k]) => text(k).toLowerCase() !== name) as unknown as Headers;
    }
    const flat: Array<string | Buffer | Array<string | Buffer>> = [];
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const k = headers[i];
      const v = headers[i + 1];
      if (k !== undefined && v !== undefined && text(k).toLowerCase() !== name) flat.push(k, v);
    }
    return flat as Headers;
  }
  const iterable = headers as Iterable<[string, Value]>;
  if (typeof iterable[Symbol.iterator] === 'function') return [...iterable].filter(([k]) => k.toLowerCase() !== name) as unknown as Headers;
  const out: Record<string, Value> = {};
  for (const [k, v] of Object.entries(headers as Record<string, Value>)) if (k.toLowerCase() !== name) out[k] = v;
  return out;
}
