import type { Logger } from 'pino';
import type { KubeCredentials } from './credentials.ts';
import { request } from './undici-parts.ts';
import type { KubeUpstream } from './upstream.ts';

/** What status reports carry about the API server. */
export interface ApiServerStatus {
  reachable: boolean;
  version?: string;
  checkedAt?: string;
  error?: string;
}

/** Options of {@link ApiHealth}. Durations in milliseconds. */
export interface ApiHealthOptions {
  credentials: KubeCredentials;
  upstream: KubeUpstream;
  logger: Logger;
  /** Check period (the agent uses its `pollIntervalMs`). */
  intervalMs: number;
  /** One check's deadline. Default `min(intervalMs, 10_000)`. */
  timeoutMs?: number;
  /** A success older than this makes the agent not ready. Default `3 × intervalMs`. */
  staleAfterMs?: number;
}

/**
 * Watches the API server: at start and every `intervalMs`, `GET /readyz`
 * (falling back to `/version` when `/readyz` is not served or not allowed) and
 * `GET /version` for the version. Feeds `/ready` and status reports.
 */
export class ApiHealth {
  readonly #o: ApiHealthOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastSuccess: number | undefined;
  #status: ApiServerStatus = { reachable: false, error: 'not checked yet' };
  #closed = false;
  readonly #abort = new AbortController();

  constructor(options: ApiHealthOptions) {
    this.#o = options;
  }

  /** Runs the first check now and then every `intervalMs`. */
  start(): void {
    if (this.#timer !== undefined || this.#closed) return;
    void this.check();
    this.#timer = setInterval(() => void this.check(), this.#o.intervalMs);
    this.#timer.unref();
  }

  /** Latest status (for status reports). */
  status(): ApiServerStatus {
    return { ...this.#status };
  }

  /** `true`, or why the API server does not count as reachable (for `/ready`). */
  readiness(): true | string {
    const stale = this.#o.staleAfterMs ?? 3 * this.#o.intervalMs;
    if (this.#lastSuccess === undefined) return this.#status.error ?? 'not checked yet';
    if (Date.now() - this.#lastSuccess > stale) {
      return `no successful check for ${String(Math.round((Date.now() - this.#lastSuccess) / 1000))} s${this.#status.error !== undefined ? ` (${this.#status.error})` : ''}`;
    }
    return true;
  }

  /** One check (concurrent calls share it). */
  check(): Promise<void> {
    this.#running ??= this.#check().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#abort.abort();
  }

  async #get(path: string): Promise<{ status: number; body: string }> {
    const { headers, tls } = await this.#o.credentials.resolve();
    const timeoutMs = this.#o.timeoutMs ?? Math.min(this.#o.intervalMs, 10_000);
    // The streaming pool: h2 when the API server offers it (as WATCH does), so
    // an agent that has relayed no plain request yet never compiles undici's
    // HTTP/1.1 parser (WebAssembly: ~12 MB of an idle agent's RSS with the
    // compiler's pages). Without h2 it is HTTP/1.1 there too.
    const res = await request(this.#o.upstream.dispatcher(tls, 'stream'), {
      path,
      method: 'GET',
      headers: { ...headers, accept: 'application/json' },
      signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(timeoutMs)]),
    });
    const body = await res.body.text();
    if (res.statusCode === 401) this.#o.credentials.invalidate();
    return { status: res.statusCode, body: body.slice(0, 4_096) };
  }

  async #check(): Promise<void> {
    const checkedAt = new Date().toISOString();
    try {
      const ready = await this.#get('/readyz');
      let ok = ready.status >= 200 && ready.status < 300;
      let error = ok ? undefined : `/readyz answered ${String(ready.status)}`;
      let version: string | undefined = this.#status.version;
      const v = await this.#get('/version');
      if (v.status >= 200 && v.status < 300) {
        const parsed = JSON.parse(v.body) as { gitVersion?: unknown };
        if (typeof parsed.gitVersion === 'string') version = parsed.gitVersion;
        // /readyz may be unserved or forbidden to this identity: /version answering is enough.
        if (!ok && (ready.status === 404 || ready.status === 403)) {
          ok = true;
          error = undefined;
        }
      } else if (!ok) {
        error = `${error ?? ''}, /version answered ${String(v.status)}`;
      }
      if (this.#closed) return;
      const wasReachable = this.#status.reachable;
      this.#status = { reachable: ok, checkedAt, ...(version !== undefined ? { version } : {}), ...(error !== undefined ? { error } : {}) };
      if (ok) this.#lastSuccess = Date.now();
      if (ok !== wasReachable) this.#o.logger.info({ reachable: ok, version, error }, ok ? 'api server reachable' : 'api server not ready');
    } catch (err) {
      if (this.#closed) return;
      const message = (err as Error).message;
      if (this.#status.reachable || this.#status.error !== message)
        this.#o.logger.warn({ err: { code: (err as { code?: unknown }).code, message } }, 'api server check failed');
      this.#status = { reachable: false, checkedAt, ...(this.#status.version !== undefined ? { version: this.#status.version } : {}), error: message };
    }
  }
}
