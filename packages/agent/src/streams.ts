import type { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Logger } from 'pino';
import { readPreamble } from '@pipeops/tunnel-protocol';
import type { StreamKind, StreamPreamble } from '@pipeops/tunnel-protocol';
import type { AgentMetrics, StreamResult } from './metrics.ts';

/** Context handed to a stream handler. */
export interface StreamContext {
  /** Child logger bound to `{ streamId, kind, requestId }` (made on first use: most streams never log). */
  readonly logger: Logger;
}

/**
 * A stream's logger, made when first asked for: pino's child() costs an
 * object and a serialised copy of its bindings, and 10,000 open WATCH
 * streams that never log would hold 10,000 of each.
 */
class LazyStreamLog implements StreamContext {
  readonly #base: Logger;
  readonly #bindings: Record<string, unknown>;
  #child: Logger | undefined;

  constructor(base: Logger, bindings: Record<string, unknown>) {
    this.#base = base;
    this.#bindings = bindings;
  }

  get logger(): Logger {
    return (this.#child ??= this.#base.child(this.#bindings));
  }

  /** Adds bindings; only before the logger was made. */
  bind(more: Record<string, unknown>): this {
    Object.assign(this.#bindings, more);
    return this;
  }
}

/**
 * Serves one inbound data stream after its preamble was read (the payload
 * follows in `stream`). Resolve when the exchange is complete; reject (or
 * destroy the stream) on failure. Must not throw synchronously past the stream.
 */
export type StreamHandler = (stream: Duplex, preamble: StreamPreamble, ctx: StreamContext) => Promise<void>;

/** `ping`: echo every byte back; end our side when the far side ends. */
export const pingHandler: StreamHandler = async (stream) => {
  stream.pipe(stream);
  await finished(stream);
};

export interface StreamDispatcherOptions {
  logger: Logger;
  metrics: AgentMetrics;
  /** A stream whose preamble does not arrive within this is reset, ms. */
  preambleTimeoutMs: number;
}

type StreamLike = Duplex & { id?: number; setGroup?: (group: string | undefined) => unknown };

/**
 * Reads each inbound stream's preamble and hands it to the handler
 * registered for its kind. Unknown kinds, bad preambles and handler failures
 * reset that one stream (RST) and never touch the session.
 */
export class StreamDispatcher {
  readonly #o: StreamDispatcherOptions;
  readonly #handlers = new Map<string, StreamHandler>();
  readonly #active = new Set<Duplex>();
  #accepted = 0;

  constructor(options: StreamDispatcherOptions) {
    this.#o = options;
    this.#handlers.set('ping', pingHandler);
  }

  /** Registers (or replaces) the handler of a stream kind. */
  register(kind: StreamKind, handler: StreamHandler): void {
    this.#handlers.set(kind, handler);
  }

  /** Streams currently being served. */
  get active(): number {
    return this.#active.size;
  }

  /** Inbound streams taken so far (served, refused or failed). */
  get accepted(): number {
    return this.#accepted;
  }

  /** Serves one inbound stream; never rejects. */
  async handle(stream: StreamLike): Promise<void> {
    const ctx = new LazyStreamLog(this.#o.logger, { streamId: stream.id });
    // A reset from the peer errors the stream; the handler's own listeners
    // (or finished()) see it too, this one keeps it from becoming uncaught.
    stream.on('error', ignore);
    this.#accepted++;
    this.#active.add(stream);
    let preamble: StreamPreamble;
    try {
      preamble = await readPreambleWithin(stream, this.#o.preambleTimeoutMs);
    } catch (err) {
      this.#active.delete(stream);
      ctx.logger.warn({ err: summarize(err) }, 'inbound stream refused: bad preamble');
      this.#o.metrics.streams.refused('unknown');
      stream.destroy();
      return;
    }
    // Each runner is its own scheduling group on the session: the agent's answers (downloads, WATCH
    // events) are shared per runner, so 200 bulk streams of one runner cannot starve another's.
    if (preamble.runnerId !== undefined) stream.setGroup?.(preamble.runnerId);
    const kind = preamble.kind;
    const handler = this.#handlers.get(kind);
    ctx.bind({ kind, requestId: preamble.requestId });
    if (handler === undefined) {
      this.#active.delete(stream);
      ctx.logger.warn('inbound stream refused: no handler for kind');
      this.#o.metrics.streams.refused(kind);
      stream.destroy();
      return;
    }
    this.#o.metrics.streams.opened(kind);
    const started = performance.now();
    let result: Exclude<StreamResult, 'refused'> = 'ok';
    try {
      await handler(stream, preamble, ctx);
    } catch (err) {
      result = isReset(err) ? 'reset' : 'error';
      if (this.#o.logger.isLevelEnabled('debug')) ctx.logger.debug({ err: summarize(err) }, 'inbound stream failed');
      if (!stream.destroyed) stream.destroy();
    } finally {
      this.#active.delete(stream);
      this.#o.metrics.streams.closed(kind, result);
    }
    if (this.#o.logger.isLevelEnabled('debug')) ctx.logger.debug({ result, ms: Math.round(performance.now() - started) }, 'inbound stream done');
  }
}

function ignore(): void {}

/** The stream's preamble; a stream that does not deliver it within `ms` is destroyed (and this rejects). */
async function readPreambleWithin(stream: Duplex, ms: number): Promise<StreamPreamble> {
  const timer = setTimeout(() => stream.destroy(), ms);
  timer.unref();
  try {
    return await readPreamble(stream);
  } finally {
    clearTimeout(timer);
  }
}

function isReset(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'PT_ERR_MUX_STREAM_RESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'PT_ERR_MUX_SESSION_CLOSED';
}

function summarize(err: unknown): { code?: string; message: string } {
  const e = err as { code?: unknown; message?: unknown } | null;
  const out: { code?: string; message: string } = { message: typeof e?.message === 'string' ? e.message : String(err) };
  if (typeof e?.code === 'string') out.code = e.code;
  return out;
}
