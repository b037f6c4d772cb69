// One audit record per runner request, on the gateway and on the agent
// (issue 9): who (runner, cluster, request id) did what (verb, API group,
// resource, subresource, namespace, name), with what outcome (status, bytes,
// duration, allowed or denied and by which rule). Never a token, a header
// value, a query or a body: what a runner asked for is described by the
// request-info fields, which carry no secrets.
import { createWriteStream, type WriteStream } from 'node:fs';
import pino from 'pino';

/**
 * Response header by which the agent tells the gateway that it refused a
 * request itself and by which rule (its value: an {@link AuditDenyRule}), so
 * the gateway's audit record shows the same decision as the agent's.
 */
export const DENIED_BY_HEADER = 'x-pipeops-denied-by';

/** Why a request was refused before it reached the API server (a fixed set; also a metric label). */
export const auditDenyRules = [
  'impersonation',
  'read_only',
  'deny_subresources',
  'deny_resources',
  'namespaces',
  'auth',
  'cluster',
  'stream_limit',
  'rate_limit',
  'protocol',
  'identity',
] as const;
export type AuditDenyRule = (typeof auditDenyRules)[number];

const DENY_RULES: ReadonlySet<string> = new Set<string>(auditDenyRules);

/** The deny rule in a {@link DENIED_BY_HEADER} value, or undefined when it is not one. */
export function deniedByRule(value: string | undefined): AuditDenyRule | undefined {
  const v = value?.trim();
  return v !== undefined && DENY_RULES.has(v) ? (v as AuditDenyRule) : undefined;
}

/** The request-info fields of an audit record (what kube-apiserver's request-info resolver derives). */
export interface AuditTarget {
  verb: string;
  apiGroup: string;
  apiVersion: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

/** One audit record. `time` is when the request arrived; `ms` how long it lasted. */
export interface AuditRecord extends AuditTarget {
  event: 'audit';
  side: 'gateway' | 'agent';
  time: string;
  requestId: string;
  runnerId: string | null;
  cluster: string | null;
  /** Gateway only: the runner route (`k8s`, `ws-runner`, `ws-k8s`). */
  route?: string | undefined;
  method: string;
  /** The request path without its query, cut at 2,048 characters. */
  path: string;
  /** The status sent to the runner; null when none was (the runner went away first). */
  status: number | null;
  bytesIn: number;
  bytesOut: number;
  ms: number;
  upgraded: boolean;
  decision: 'allowed' | 'denied';
  /** Set when `decision` is `denied`. */
  rule?: AuditDenyRule | undefined;
  /** What went wrong, when something did (a message, never a secret). */
  error?: string | undefined;
  /** JSON protocol (`/ws/k8s`) only: how the exchange ended (`ok`, `error`, `cancelled` by the runner, `closed` with its socket). */
  outcome?: string | undefined;
}

/** What a log-stream sink needs of a logger (pino's shape). */
export interface AuditLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Options of {@link createAuditSink}. */
export interface AuditSinkOptions {
  /** JSON-lines file, appended to; absent or `''` → the log stream. */
  file?: string | undefined;
  logger: AuditLogger;
  /** The log-stream record's message. Default `'audit'`. */
  message?: string;
  /** A file sink that falls this far behind drops records (counted in `dropped`) instead of growing memory, bytes. Default `16_777_216` (16 MiB). */
  maxBufferedBytes?: number;
}

/** Where audit records go. */
export interface AuditSink {
  /** Writes one record; `warn` marks it as a failure worth attention in the log stream. */
  write(rec: AuditRecord, level?: 'info' | 'warn'): void;
  /** Records dropped because the file could not keep up (or failed). */
  readonly dropped: number;
  /** Flushes and closes a file sink. */
  close(): Promise<void>;
  /** The destination, for start-up logs: `log` or the file path. */
  readonly destination: string;
}

/** Cuts a request target to the audited path: no query, at most 2,048 characters. */
export function auditPath(target: string): string {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  return path.length > 2_048 ? `${path.slice(0, 2_048)}…` : path;
}

/** The empty request-info fields (a request refused before it could be read). */
export const NO_AUDIT_TARGET: Readonly<AuditTarget> = Object.freeze({
  verb: '',
  apiGroup: '',
  apiVersion: '',
  resource: '',
  subresource: '',
  namespace: '',
  name: '',
});

/**
 * What {@link auditRecord} makes a record of: the record's own fields but
 * `event` and `decision` (derived), with the request target as asked for
 * (`target`; the record keeps it without its query, see {@link auditPath})
 * and its request-info fields (`info`).
 */
export type AuditFields = Omit<AuditRecord, 'event' | 'decision' | 'path' | keyof AuditTarget> & { target: string; info: AuditTarget };

/**
 * The one shape of an audit record, gateway's and agent's alike: every
 * field in a fixed order on one object literal (absent optional fields are
 * undefined, which no JSON writer prints), `decision` from `rule`. A record
 * is made for every request, so it is built without spreads: those made a
 * dictionary object and three short-lived ones per record.
 */
export function auditRecord(f: AuditFields): AuditRecord {
  const t = f.info;
  return {
    event: 'audit',
    side: f.side,
    time: f.time,
    requestId: f.requestId,
    runnerId: f.runnerId,
    cluster: f.cluster,
    route: f.route,
    method: f.method,
    path: auditPath(f.target),
    verb: t.verb,
    apiGroup: t.apiGroup,
    apiVersion: t.apiVersion,
    resource: t.resource,
    subresource: t.subresource,
    namespace: t.namespace,
    name: t.name,
    status: f.status,
    bytesIn: f.bytesIn,
    bytesOut: f.bytesOut,
    ms: f.ms,
    upgraded: f.upgraded,
    decision: f.rule === undefined ? 'allowed' : 'denied',
    rule: f.rule,
    error: f.error,
    outcome: f.outcome,
  };
}

/** The request-info fields of an audit record, from a resolved request info. */
export function auditTarget(info: AuditTarget): AuditTarget {
  return {
    verb: info.verb,
    apiGroup: info.apiGroup,
    apiVersion: info.apiVersion,
    resource: info.resource,
    subresource: info.subresource,
    namespace: info.namespace,
    name: info.name,
  };
}

/**
 * Creates the audit sink: the log stream (one record per request, at info,
 * `warn` for failures) or a JSON-lines file opened for appending. A file
 * that fails or falls more than `maxBufferedBytes` behind drops records and
 * counts them; the failure is logged once.
 */
export function createAuditSink(o: AuditSinkOptions): AuditSink {
  const message = o.message ?? 'audit';
  if (o.file === undefined || o.file === '') {
    const line = pinoLineWriter(o.logger, message);
    return {
      destination: 'log',
      dropped: 0,
      write:
        line ??
        ((rec, level = 'info') => {
          o.logger[level](rec, message);
        }),
      close: () => Promise.resolve(),
    };
  }
  return new FileAuditSink(o.file, o.logger, o.maxBufferedBytes ?? 16 * 1024 * 1024);
}

const { streamSym, chindingsSym, timeSym, lsCacheSym, endSym, messageKeySym, nestedKeySym } = pino.symbols;

/**
 * For a pino logger, a writer of audit records as the very line pino would
 * write (its level and time fields, its bindings, the record, the message),
 * with the record serialised by one JSON.stringify instead of pino's
 * per-field serialisers: measured, pino's path was a fifth of the gateway's
 * and the agent's CPU per small request (25-40 us), and most of their
 * garbage. A record is a flat object of strings, numbers and booleans with
 * no secret in it, so the log formatter (secret redaction) has nothing to
 * do. Undefined for any other logger, or a pino set up in a way this does
 * not reproduce (nested key): its own methods are used then.
 */
function pinoLineWriter(logger: AuditLogger, message: string): ((rec: AuditRecord, level?: 'info' | 'warn') => void) | undefined {
  const own = (sym: symbol): unknown => (logger as unknown as Record<symbol, unknown>)[sym];
  const stream = own(streamSym) as { write?: unknown } | undefined;
  const chindings = own(chindingsSym);
  const time = own(timeSym);
  const levelStrings = own(lsCacheSym) as Record<number, string> | undefined;
  const end = own(endSym);
  const messageKey = own(messageKeySym);
  const pinoLike = logger as AuditLogger & { levels?: { values?: Record<string, number> }; isLevelEnabled?: (level: string) => boolean };
  const values = pinoLike.levels?.values;
  const enabled = pinoLike.isLevelEnabled;
  if (
    stream === undefined ||
    typeof stream.write !== 'function' ||
    typeof chindings !== 'string' ||
    typeof time !== 'function' ||
    levelStrings === undefined ||
    typeof end !== 'string' ||
    typeof messageKey !== 'string' ||
    (own(nestedKeySym) ?? null) !== null ||
    values === undefined ||
    typeof enabled !== 'function'
  )
    return undefined;
  const write = (stream.write as (line: string) => unknown).bind(stream);
  const now = time as () => string;
  const prefix = { info: levelStrings[values.info ?? 30], warn: levelStrings[values.warn ?? 40] };
  if (prefix.info === undefined || prefix.warn === undefined) return undefined;
  const msg = `,${JSON.stringify(messageKey)}:${JSON.stringify(message)}${end}`;
  return (rec, level = 'info') => {
    if (!enabled.call(logger, level)) return;
    const json = JSON.stringify(rec);
    write(`${prefix[level]}${now()}${own(chindingsSym) as string},${json.slice(1, -1)}${msg}`);
  };
}

class FileAuditSink implements AuditSink {
  readonly destination: string;
  readonly #out: WriteStream;
  readonly #logger: AuditLogger;
  readonly #maxBuffered: number;
  #dropped = 0;
  #failed = false;
  #warnedBehind = false;

  constructor(file: string, logger: AuditLogger, maxBuffered: number) {
    this.destination = file;
    this.#logger = logger;
    this.#maxBuffered = maxBuffered;
    this.#out = createWriteStream(file, { flags: 'a', mode: 0o600 });
    this.#out.on('error', (err) => {
      if (this.#failed) return;
      this.#failed = true;
      logger.warn({ event: 'audit_file_failed', file, err }, 'audit file failed; audit records are dropped from now on');
    });
  }

  get dropped(): number {
    return this.#dropped;
  }

  write(rec: AuditRecord): void {
    if (this.#failed || this.#out.writableLength > this.#maxBuffered) {
      this.#dropped++;
      if (!this.#failed && !this.#warnedBehind) {
        this.#warnedBehind = true;
        this.#logger.warn({ event: 'audit_file_behind', file: this.destination }, 'audit file cannot keep up; records are dropped while it is behind');
      }
      return;
    }
    this.#out.write(`${JSON.stringify(rec)}\n`);
  }

  close(): Promise<void> {
    if (this.#out.closed || this.#failed) return Promise.resolve();
    return new Promise((resolve) => this.#out.end(() => resolve()));
  }
}
