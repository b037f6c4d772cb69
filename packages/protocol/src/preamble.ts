import type { Duplex } from 'node:stream';
import { DEFAULT_MAX_PREAMBLE_BYTES } from './constants.ts';
import { TunnelError } from './errors.ts';
import { readLine, type LineErrors } from './line-reader.ts';

/** Kinds of data stream the gateway opens to an agent. */
export const STREAM_KINDS = ['http', 'ping'] as const;
/** A data stream's kind: `http` carries one HTTP/1.1 exchange; `ping` is echoed by the agent. */
export type StreamKind = (typeof STREAM_KINDS)[number];

/**
 * The first line of every data stream the gateway opens to the agent; the
 * payload (for `http`, an HTTP/1.1 request) follows it.
 */
export interface StreamPreamble {
  v: 1;
  kind: StreamKind;
  /** Correlates gateway and agent logs; not a secret. */
  requestId: string;
  /** The authenticated runner's id from the gateway's tokens file (set on runner streams only). */
  runnerId?: string;
  /** That runner's groups from the tokens file; the agent impersonates them with `access_as: runner`. */
  groups?: string[];
  cluster?: string;
}

/** Serialises a preamble as one JSON line (`JSON + '\n'`). */
export function encodePreamble(p: StreamPreamble): Buffer {
  const out: StreamPreamble = { v: p.v, kind: p.kind, requestId: p.requestId };
  if (p.runnerId !== undefined) out.runnerId = p.runnerId;
  if (p.groups !== undefined && p.groups.length > 0) out.groups = p.groups;
  if (p.cluster !== undefined) out.cluster = p.cluster;
  return Buffer.from(`${JSON.stringify(out)}\n`, 'utf8');
}

/**
 * Reads the preamble line from `stream` and validates it. Bytes after the
 * newline are unshifted back into the stream, so the next reader sees the
 * payload intact.
 *
 * Rejects with {@link TunnelError}:
 * - `PT_ERR_PREAMBLE_TOO_LARGE` when no newline arrives within `maxBytes` (default 8_192 bytes);
 * - `PT_ERR_PREAMBLE_INVALID` on bad JSON, wrong fields, or a stream that ends first;
 * - `PT_ERR_PREAMBLE_UNKNOWN_KIND` for a well-formed preamble of an unknown kind (answer with RST).
 */
export async function readPreamble(stream: Duplex, maxBytes: number = DEFAULT_MAX_PREAMBLE_BYTES): Promise<StreamPreamble> {
  return parsePreamble(await readLine(stream, maxBytes, PREAMBLE_LINE_ERRORS));
}

const PREAMBLE_LINE_ERRORS: LineErrors = {
  tooLarge: (maxBytes) => new TunnelError('PT_ERR_PREAMBLE_TOO_LARGE', `no preamble line within ${maxBytes} bytes`),
  cut: (cause) =>
    cause === undefined
      ? new TunnelError('PT_ERR_PREAMBLE_INVALID', 'stream ended before the preamble line')
      : new TunnelError('PT_ERR_PREAMBLE_INVALID', 'stream failed before the preamble line', { cause }),
};

/** Parses and validates one preamble line (without its newline). */
export function parsePreamble(line: string): StreamPreamble {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new TunnelError('PT_ERR_PREAMBLE_INVALID', 'preamble is not JSON', { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('preamble is not an object');
  const p = value as Record<string, unknown>;
  if (p.v !== 1) throw invalid('preamble version must be 1');
  if (typeof p.requestId !== 'string') throw invalid('preamble requestId must be a string');
  if (p.runnerId !== undefined && typeof p.runnerId !== 'string') throw invalid('preamble runnerId must be a string');
  if (p.cluster !== undefined && typeof p.cluster !== 'string') throw invalid('preamble cluster must be a string');
  if (p.groups !== undefined && (!Array.isArray(p.groups) || !p.groups.every((g) => typeof g === 'string')))
    throw invalid('preamble groups must be a list of strings');
  if (typeof p.kind !== 'string') throw invalid('preamble kind must be a string');
  if (!(STREAM_KINDS as readonly string[]).includes(p.kind)) {
    throw new TunnelError('PT_ERR_PREAMBLE_UNKNOWN_KIND', `unknown stream kind ${JSON.stringify(p.kind.slice(0, 64))}`);
  }
  return p as unknown as StreamPreamble;
}

function invalid(message: string): TunnelError {
  return new TunnelError('PT_ERR_PREAMBLE_INVALID', message);
}
