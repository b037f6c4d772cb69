// Turning an HTTP response into the JSON protocol's `headers` and `body`.
import { relayResponseHeaders } from '@pipeops/tunnel-protocol';

/**
 * `{ name: [values] }` from Node's `rawHeaders` (names lower-cased, repeated
 * headers kept in order), relayed by the hop-by-hop rule: a reply carries no
 * trailers, so no `Trailer` either.
 */
export function headerMap(rawHeaders: readonly string[]): Record<string, string[]> {
  const out = Object.create(null) as Record<string, string[]>;
  const kept = relayResponseHeaders(rawHeaders);
  for (let i = 0; i + 1 < kept.length; i += 2) (out[(kept[i] ?? '').toLowerCase()] ??= []).push(kept[i + 1] ?? '');
  return out;
}

/** The media type (lower-cased, parameters stripped) of a Content-Type value. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** True for `application/json`, `*\/*+json` (and `application/json;stream=watch`). */
export function isJsonType(contentType: string | undefined): boolean {
  const t = mediaType(contentType);
  return t === 'application/json' || t.endsWith('+json');
}

const TEXT_TYPES = new Set(['application/yaml', 'application/x-yaml', 'application/xml', 'application/javascript', 'application/x-www-form-urlencoded']);

function isTextType(t: string): boolean {
  return t.startsWith('text/') || TEXT_TYPES.has(t) || t.endsWith('+xml') || t.endsWith('+yaml');
}

/** A non-stream response body as the protocol carries it. */
export interface EncodedBody {
  body: unknown;
  bodyEncoding?: 'base64';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * JSON content types → the parsed value (a body that does not parse is
 * passed as its text); text types, or no type, → a UTF-8 string when the
 * bytes are valid UTF-8; anything else (protobuf, octet-stream, invalid
 * UTF-8) → base64 with `bodyEncoding: "base64"`. An empty body is `""`.
 */
export function encodeBody(bytes: Buffer, contentType: string | undefined): EncodedBody {
  if (bytes.length === 0) return { body: '' };
  const t = mediaType(contentType);
  if (t === '' || isTextType(t) || isJsonType(t)) {
    let text: string | undefined;
    try {
      text = utf8.decode(bytes);
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      if (isJsonType(t)) {
        try {
          return { body: JSON.parse(text) as unknown };
        } catch {
          return { body: text };
        }
      }
      return { body: text };
    }
  }
  return { body: bytes.toString('base64'), bodyEncoding: 'base64' };
}
