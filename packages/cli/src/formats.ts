import convict from 'convict';
import { parseDurationMs } from './duration.ts';

/** pino levels accepted by `log_level` keys and `--log-level`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off', '']);

let registered = false;

/**
 * Registers the custom convict formats used by the schemas. Coercers never
 * throw: an unparseable value is kept as is so that validation reports it
 * with the key's name.
 */
export function registerFormats(): void {
  if (registered) return;
  registered = true;
  convict.addFormats({
    // Durations become integer milliseconds.
    'duration-ms': {
      validate(v: unknown) {
        if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
          throw new Error('must be a duration such as 500ms, 30s, 1m or 1h');
        }
      },
      coerce: (v: string) => parseDurationMs(v) ?? v,
    },
    // Booleans from the environment: true/false/1/0/yes/no/on/off (convict's own accepts anything).
    flag: {
      validate(v: unknown) {
        if (typeof v !== 'boolean') throw new Error('must be true or false');
      },
      coerce(v: string) {
        const s = v.trim().toLowerCase();
        if (TRUE.has(s)) return true;
        if (FALSE.has(s)) return false;
        return v;
      },
    },
    // Lists of names: a YAML list in the file, `a,b c` (commas or spaces) in the environment.
    'name-list': {
      validate(v: unknown) {
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) throw new Error('must be a list of names (env: comma-separated)');
      },
      coerce: (v: string) => v.split(/[\s,]+/).filter((x) => x !== ''),
    },
    'access-as': {
      validate(v: unknown) {
        if (v !== 'agent' && v !== 'runner') throw new Error('must be agent or runner');
      },
      coerce: (v: string) => v.trim().toLowerCase(),
    },
    'required-string': {
      validate(v: unknown) {
        if (typeof v !== 'string' || v.trim() === '') throw new Error('is required');
      },
    },
    'tunnel-url': {
      validate(v: unknown) {
        if (typeof v !== 'string' || v.trim() === '') throw new Error('is required');
        let u: URL;
        try {
          u = new URL(v);
        } catch {
          throw new Error('must be an absolute URL such as https://gateway.example.com');
        }
        if (!['https:', 'wss:', 'http:', 'ws:'].includes(u.protocol)) {
          throw new Error('must use https:// or wss:// (http:// and ws:// only with TLS disabled)');
        }
      },
    },
    'log-level': {
      validate(v: unknown) {
        if (typeof v !== 'string' || !(LOG_LEVELS as readonly string[]).includes(v)) {
          throw new Error(`must be one of ${LOG_LEVELS.join(', ')}`);
        }
      },
      coerce: (v: string) => v.trim().toLowerCase(),
    },
    'host-port': {
      validate(v: unknown) {
        if (typeof v !== 'string' || parseHostPort(v) === undefined) {
          throw new Error('must be HOST:PORT with a port from 0 to 65535 (e.g. 0.0.0.0:8443, [::]:8443)');
        }
      },
    },
    // Sizes become integer bytes: 262144, 256KiB, 16MiB, 1GiB.
    'byte-size': {
      validate(v: unknown) {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error('must be a size such as 262144, 256KiB or 16MiB');
      },
      coerce: (v: string) => parseByteSize(v) ?? v,
    },
    'string-map': {
      validate(v: unknown) {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('must be a map of strings');
        for (const [k, val] of Object.entries(v)) {
          if (typeof val !== 'string') throw new Error(`value of label "${k}" must be a string`);
        }
      },
    },
  });
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** `16MiB` → 16777216; a plain integer is bytes. undefined when it is not a size. */
export function parseByteSize(text: string | number): number | undefined {
  if (typeof text === 'number') return text;
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m === null ? undefined : SIZE_UNITS[m[2]!.toLowerCase()];
  return m === null || unit === undefined ? undefined : Number(m[1]) * unit;
}

/** Parses `HOST:PORT` (IPv6 hosts in brackets). */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65_535) return undefined;
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/**
 * Parses labels given as text (environment): `k=v,k2=v2` or a JSON object.
 * @returns the map, or `undefined` when the text is neither.
 */
export function parseLabels(text: string): Record<string, string> | undefined {
  const s = text.trim();
  if (s === '') return {};
  if (s.startsWith('{')) {
    try {
      const v: unknown = JSON.parse(s);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
      return v as Record<string, string>;
    } catch {
      return undefined;
    }
  }
  const out: Record<string, string> = {};
  for (const part of s.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) return undefined;
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}
