// Reading the kube-apiserver's audit log (cluster.ts turns it on: JSON lines,
// level Metadata for every request). The log backend writes an event after
// the response has gone out, so a reader waits for the event it wants.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { until } from './proc.ts';

/** The fields of an audit.k8s.io/v1 Event the scenarios look at. */
export interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  impersonatedUser?: { username: string; groups?: string[] };
  responseStatus?: { code?: number };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
}

/** Reads events appended to the audit log after construction (or from the start), by auditID. */
export class AuditLog {
  readonly #file: string;
  #offset: number;
  #partial = '';
  readonly #events: AuditEvent[] = [];

  /** `fromStart`: also see events written before now (default: only later ones). */
  constructor(file: string, fromStart = false) {
    this.#file = file;
    this.#offset = fromStart ? 0 : AuditLog.#size(file);
  }

  static #size(file: string): number {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  }

  /** Reads what was appended since the last read. A rotated (shorter) file is read from its start. */
  #read(): void {
    const size = AuditLog.#size(this.#file);
    if (size < this.#offset) {
      this.#offset = 0;
      this.#partial = '';
    }
    if (size === this.#offset) return;
    const fd = openSync(this.#file, 'r');
    try {
      const buf = Buffer.alloc(size - this.#offset);
      const n = readSync(fd, buf, 0, buf.length, this.#offset);
      this.#offset += n;
      const lines = (this.#partial + buf.subarray(0, n).toString('utf8')).split('\n');
      this.#partial = lines.pop() ?? '';
      for (const l of lines) if (l.trim() !== '') this.#events.push(JSON.parse(l) as AuditEvent);
    } finally {
      closeSync(fd);
    }
  }

  /** Every event seen so far with this auditID. */
  events(auditID: string): AuditEvent[] {
    this.#read();
    return this.#events.filter((e) => e.auditID === auditID);
  }

  /** Waits for the event of `auditID` at `stage` (default ResponseComplete). */
  async waitFor(auditID: string, stage = 'ResponseComplete', timeoutMs = 10_000): Promise<AuditEvent> {
    return await until(`audit event ${auditID} (${stage})`, async () => this.events(auditID).find((e) => e.stage === stage), timeoutMs, 50);
  }
}

/** One line per event, stable across targets: stage, verb, URI, who, impersonated who, status. */
export function describeEvent(e: AuditEvent): string {
  const as = e.impersonatedUser !== undefined ? ` as=${e.impersonatedUser.username} asGroups=[${(e.impersonatedUser.groups ?? []).join(',')}]` : '';
  return `${e.stage} ${e.verb} ${e.requestURI} user=${e.user.username}${as} code=${e.responseStatus?.code ?? '-'}`;
}
