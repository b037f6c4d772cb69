import { Duplex } from 'node:stream';
import { resolveSessionOptions, type ResolvedSessionOptions, type SessionOptions } from './config.ts';
import { FrameReader } from './frame-reader.ts';
import { destroyQuietly, MuxError } from './errors.ts';
import { Fifo } from './fifo.ts';
import { encodeHeader, Flag, FrameType, GoAwayCode, type FrameHeader, type OutFrame } from './frame.ts';
import { Pinger } from './pinger.ts';
import { SendScheduler } from './send-scheduler.ts';
import { Stream, type StreamHost, type StreamSettings } from './stream.ts';
import { TokenBucket } from './token-bucket.ts';

/** Counters of a session; a snapshot is returned by {@link Session.stats}. */
export interface SessionStats {
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
  framesOut: number;
  streamsOpened: number;
  streamsAccepted: number;
  resetsIn: number;
  resetsOut: number;
  /**
   * Pings from the peer left unanswered: beyond `maxPingsPerSecond` / `pingBurst`, or
   * while {@link MAX_QUEUED_PONGS} pongs were already waiting for the transport.
   */
  pingsDropped: number;
}

/** The cumulative byte, frame and reset counters of {@link SessionStats}, as the agent's and the gateway's metrics read them. */
export type SessionCounters = Pick<SessionStats, 'bytesIn' | 'bytesOut' | 'framesIn' | 'framesOut' | 'resetsIn' | 'resetsOut'>;

const MAX_STREAM_ID = 0xffff_ffff;
/** Flags that act once a frame's payload is complete. */
const END_FLAGS = Flag.fin | Flag.rst;
/**
 * Pongs queued but not yet handed to the transport, at most. A peer that floods
 * pings and does not read our output would otherwise grow this queue with every
 * ping; beyond it a ping is dropped (counted in `pingsDropped`).
 */
export const MAX_QUEUED_PONGS = 64;
/** Window auto-tuning re-measures the RTT with a ping when the last sample is older than this (ms). */
const RTT_REFRESH_MS = 10_000;

// Typed events (declaration merging; type-only, erased at run time).
export interface Session {
  /** An inbound stream, when someone listens; otherwise streams queue for accept(). */
  on(event: 'stream', listener: (stream: Stream) => void): this;
  /** The remote sent GoAway with this code (0 normal, 1 protocol error, 2 internal error). */
  on(event: 'goaway', listener: (code: number) => void): this;
  // biome-ignore lint/suspicious/noExplicitAny: the catch-all overload must match EventEmitter's own signature
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'stream', listener: (stream: Stream) => void): this;
  once(event: 'goaway', listener: (code: number) => void): this;
  // biome-ignore lint/suspicious/noExplicitAny: the catch-all overload must match EventEmitter's own signature
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

/**
 * A yamux session. The Duplex side is the byte stream: write transport bytes
 * into it, read the bytes to send out of it (see {@link createSession}).
 *
 * Output order: control frames (window updates, pings, RST, GoAway) always go
 * before queued data. Data frames (≤ `maxFrameBytes`) are scheduled fairly by
 * group: round-robin across the scheduling groups that have a ready stream
 * ({@link Stream.setGroup}; every ungrouped stream shares one group), and
 * round-robin across the ready streams within a group, one frame per turn. So
 * a group with 200 bulk streams and a group with one small request each get
 * every other frame; with no groups set this is plain round-robin over the
 * streams. Choosing the next frame is O(1). Output is produced only while the
 * readable side wants more (push() backpressure). Input is never blocked by
 * output: every inbound frame is handled as it arrives, and inbound data is
 * bounded by the per-stream receive windows.
 *
 * Pings from the peer are answered at most `maxPingsPerSecond` (burst
 * `pingBurst`), and at most {@link MAX_QUEUED_PONGS} pongs wait for the
 * transport; other pings are dropped and counted in `stats.pingsDropped`. Window
 * announcements, window updates and RSTs are never dropped.
 *
 * Frames for an unknown stream ID (never opened, or already closed) are
 * ignored, as hashicorp/yamux does: a late frame for a just-closed stream is
 * normal. Protocol violations (bad version, unknown type, window overrun,
 * duplicate SYN for a live stream, wrong-parity or zero stream ID on a SYN,
 * oversized data frame) send GoAway(protocol error) and close the session
 * with MuxError `PT_ERR_MUX_PROTOCOL`.
 *
 * Like {@link Stream}, a session emits `'error'` only when someone listens;
 * the reason it closed is always in {@link closeError}.
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface above only types the class's events (no members to initialise)
export class Session extends Duplex implements StreamHost {
  readonly #o: ResolvedSessionOptions;
  readonly #settings: StreamSettings;
  readonly #streams = new Map<number, Stream>();
  readonly #decoder: FrameReader;
  #nextId: number;
  readonly #control = new Fifo<Buffer>();
  readonly #pongs = new Fifo<Buffer>();
  readonly #pingBucket: TokenBucket;
  readonly #scheduler = new SendScheduler();
  #wantOutput = false;
  /** Where frames go instead of the readable side (see outputTo). */
  #sink: OutputSink | undefined;
  #flushing = false;
  #ending = false;
  #ended = false;
  #closed = false;
  #closeError: Error | undefined;
  #acceptQueue: Stream[] = [];
  #acceptWaiters: { resolve: (s: Stream) => void; reject: (e: Error) => void }[] = [];
  readonly #pinger: Pinger;
  #keepAlive: NodeJS.Timeout | undefined;
  #endTimer: NodeJS.Timeout | undefined;
  #localGoAway = false;
  /** Inbound SYNs after our GoAway are refused (the default), or accepted until the session ends (see goAway). */
  #refuseAfterGoAway = true;
  #remoteGoAway = false;
  #drainWaiters: (() => void)[] = [];
  #tuningPing = false;
  /** Window growth its streams hold (see sessionWindowGrowthBytes). */
  #windowGrowthBytes = 0;
  readonly #stats: SessionStats = {
    bytesIn: 0,
    bytesOut: 0,
    framesIn: 0,
    framesOut: 0,
    streamsOpened: 0,
    streamsAccepted: 0,
    resetsIn: 0,
    resetsOut: 0,
    pingsDropped: 0,
  };

  /** @throws MuxError PT_ERR_MUX_CONFIG when an option is invalid. */
  constructor(options: SessionOptions) {
    const o = resolveSessionOptions(options);
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024 });
    this.#o = o;
    this.#settings = {
      maxWindowBytes: o.maxStreamWindowBytes,
      autoTuneWindow: o.autoTuneWindow,
      openTimeoutMs: o.streamOpenTimeoutMs,
      closeTimeoutMs: o.streamCloseTimeoutMs,
    };
    this.#nextId = o.client ? 1 : 2;
    this.#pingBucket = new TokenBucket(o.maxPingsPerSecond, o.pingBurst);
    this.#decoder = new FrameReader(o.maxStreamWindowBytes, (h, p, first, last) => this.#onPiece(h, p, first, last));
    this.#pinger = new Pinger((id) => this.sendControl(encodeHeader(FrameType.ping, Flag.syn, 0, id), false), o.keepAliveTimeoutMs);
    if (o.keepAliveIntervalMs > 0) {
      this.#keepAlive = setInterval(() => {
        this.ping().catch((err: unknown) => {
          if (err instanceof MuxError && err.code === 'PT_ERR_MUX_KEEPALIVE_TIMEOUT') this.destroy(err);
        });
      }, o.keepAliveIntervalMs).unref();
    }
  }

  /** true once the session is closed or closing for good. */
  get isClosed(): boolean {
    return this.#closed;
  }
  /** Streams currently open (either direction, including ones not yet accepted). */
  get numStreams(): number {
    return this.#streams.size;
  }
  /** We sent GoAway: inbound SYNs are refused with RST. */
  get localGoAway(): boolean {
    return this.#localGoAway;
  }
  /** The peer sent GoAway: `open()` throws PT_ERR_MUX_GOAWAY. */
  get remoteGoAway(): boolean {
    return this.#remoteGoAway;
  }
  /** Last measured round-trip time in ms (keepalive or `ping()`), or undefined. */
  get rttMs(): number | undefined {
    return this.#pinger.rttMs;
  }
  /** Why the session closed, also when no 'error' was emitted. */
  get closeError(): Error | undefined {
    return this.#closeError;
  }
  /** A snapshot of the counters. */
  get stats(): Readonly<SessionStats> {
    return { ...this.#stats };
  }
  /** @internal */
  get hostClosed(): boolean {
    return this.#closed;
  }
  /** What auto-tuning added to the receive windows of the open streams, together (bytes); at most `sessionWindowGrowthBytes` when that is set. */
  get windowGrowthBytes(): number {
    return this.#windowGrowthBytes;
  }
  /** @internal */
  reserveWindowGrowth(bytes: number): boolean {
    const budget = this.#o.sessionWindowGrowthBytes;
    if (budget > 0 && this.#windowGrowthBytes + bytes > budget) return false;
    this.#windowGrowthBytes += bytes;
    return true;
  }
  /** @internal */
  releaseWindowGrowth(bytes: number): void {
    this.#windowGrowthBytes -= bytes;
  }
  /** @internal Scheduling groups holding streams with data to send (0 when idle). */
  get scheduledGroupCount(): number {
    return this.#scheduler.groupCount;
  }

  /**
   * @internal The RTT window auto-tuning compares against: the last ping's
   * (keepalive or `ping()`). Missing or stale, one background ping is sent;
   * its failure is left to the keepalive to judge.
   */
  rttEstimateMs(): number | undefined {
    if (!this.#tuningPing && !this.#closed && this.#pinger.sampleAgeMs > RTT_REFRESH_MS) {
      this.#tuningPing = true;
      this.#pinger
        .ping()
        .catch(() => {})
        .finally(() => {
          this.#tuningPing = false;
        });
    }
    return this.#pinger.rttMs;
  }

  /**
   * Opens an outbound stream; SYN is queued at once and writes before the ACK are fine.
   * @throws MuxError PT_ERR_MUX_SESSION_CLOSED, PT_ERR_MUX_GOAWAY or PT_ERR_MUX_STREAMS_EXHAUSTED.
   */
  open(): Stream {
    if (this.#closed || this.#ending) throw new MuxError('PT_ERR_MUX_SESSION_CLOSED');
    if (this.#remoteGoAway) throw new MuxError('PT_ERR_MUX_GOAWAY');
    if (this.#streams.size >= this.#o.maxConcurrentStreams || this.#nextId > MAX_STREAM_ID) {
      throw new MuxError('PT_ERR_MUX_STREAMS_EXHAUSTED', `cannot open more streams (${this.#streams.size} open)`);
    }
    const id = this.#nextId;
    this.#nextId += 2;
    const s = new Stream(this, id, this.#settings, true);
    this.#streams.set(id, s);
    this.#stats.streamsOpened++;
    this.sendControl(s.windowAnnouncement(Flag.syn), false);
    return s;
  }

  /** Resolves with the next inbound stream; rejects with MuxError when the session closes. */
  accept(): Promise<Stream> {
    const s = this.#acceptQueue.shift();
    if (s !== undefined) {
      this.#acceptStream(s);
      return Promise.resolve(s);
    }
    if (this.#closed) return Promise.reject(this.#closeError ?? new MuxError('PT_ERR_MUX_SESSION_CLOSED'));
    return new Promise((resolve, reject) => this.#acceptWaiters.push({ resolve, reject }));
  }

  /** Sends a ping and resolves with the RTT in ms; rejects PT_ERR_MUX_KEEPALIVE_TIMEOUT after keepAliveTimeoutMs. */
  ping(): Promise<number> {
    if (this.#closed) return Promise.reject(this.#closeError ?? new MuxError('PT_ERR_MUX_SESSION_CLOSED'));
    return this.#pinger.ping();
  }

  /**
   * Sends GoAway(code) once: no new inbound streams are accepted; existing
   * ones continue. With `acceptInFlight`, streams the peer opens until the
   * session ends are still accepted: the GoAway asks the peer to move (a
   * server that drains), and a SYN that crossed it on the wire is served
   * rather than reset — yamux's GoAway, unlike HTTP/2's, names no last
   * stream, so the peer could not tell a refused stream from a failed one.
   */
  goAway(code: GoAwayCode = GoAwayCode.normal, options: { acceptInFlight?: boolean } = {}): void {
    if (this.#localGoAway || this.#closed) return;
    this.#localGoAway = true;
    this.#refuseAfterGoAway = options.acceptInFlight !== true;
    this.sendControl(encodeHeader(FrameType.goAway, 0, 0, code), false);
  }

  /**
   * Graceful close: GoAway(normal), wait for open streams to finish (at most
   * `timeoutMs`, default `goAwayTimeoutMs`), flush, then destroy.
   */
  async close(timeoutMs: number = this.#o.goAwayTimeoutMs): Promise<void> {
    if (this.destroyed) return;
    this.goAway(GoAwayCode.normal);
    // Closing: whatever goAway() was asked before, new inbound streams are refused from here on.
    this.#refuseAfterGoAway = true;
    if (this.#streams.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs).unref();
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#drainWaiters.push(done);
      });
    }
    if (this.destroyed) {
      if (!this.closed) await new Promise<void>((resolve) => this.once('close', () => resolve()));
      return;
    }
    const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
    this.#finishOutput();
    await closed;
  }

  /** Abrupt close: every open stream fails with `err` (or PT_ERR_MUX_SESSION_CLOSED). 'error' only if listened to. */
  override destroy(err?: Error | null): this {
    return destroyQuietly(this, err, (e) => {
      this.#closeError ??= e;
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#endTimer) clearTimeout(this.#endTimer);
    this.#shutdown(err ?? this.#closeError ?? new MuxError('PT_ERR_MUX_SESSION_CLOSED'));
    cb(err);
  }

  // ---- StreamHost ----

  /** @internal */
  sendControl(frame: Buffer, isReset: boolean): void {
    if (this.#closed) return;
    if (isReset) this.#stats.resetsOut++;
    this.#control.push(frame);
    this.#flush();
  }

  /**
   * @internal A stream has data or its FIN to send. Frames are taken at the
   * end of the current turn (a microtask), not at once: the writes a stream
   * gets in one turn (a relay's pieces of one transport read) then leave
   * together, as frames of up to maxFrameBytes, instead of a frame each.
   */
  markReady(stream: Stream): void {
    this.#scheduler.add(stream);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(this.#queuedFlush);
  }

  #flushQueued = false;
  readonly #queuedFlush = (): void => {
    this.#flushQueued = false;
    this.#flush();
  };

  /** @internal */
  forget(stream: Stream): void {
    if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id);
    const i = this.#acceptQueue.indexOf(stream);
    if (i >= 0) this.#acceptQueue.splice(i, 1);
    if (this.#streams.size === 0 && this.#drainWaiters.length > 0) {
      for (const w of this.#drainWaiters.splice(0)) w();
    }
  }

  // ---- Duplex plumbing ----

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.receive(chunk);
    cb();
  }

  /**
   * @internal Bytes from the transport, as `write()` takes them, without the
   * Writable in between (createSession): decoding is synchronous and never
   * holds the bytes back, so there is nothing for a buffer to do.
   */
  receive(chunk: Buffer): void {
    if (this.#closed) return;
    this.#stats.bytesIn += chunk.length;
    try {
      this.#decoder.push(chunk);
    } catch (err) {
      this.#protocolError(err);
    }
  }

  /**
   * @internal From now on the session's frames go to `sink` instead of its
   * readable side (createSession), which then only ends: a frame passed to
   * `sink.write` that returns false is the last until {@link outputDrained}.
   * The session must not have produced output yet.
   */
  outputTo(sink: OutputSink): void {
    this.#sink = sink;
    this.#wantOutput = true;
    // Flowing, so that the readable side's end is still emitted ('end'); nothing else is pushed to it.
    this.resume();
  }

  /** @internal The sink takes frames again. */
  outputDrained(): void {
    this.#wantOutput = true;
    this.#flush();
  }

  override _final(cb: (err?: Error | null) => void): void {
    cb();
    this.destroy(new MuxError('PT_ERR_MUX_TRANSPORT_CLOSED', 'transport input ended'));
  }

  override _read(): void {
    // With a sink, only the sink says when output may go on.
    if (this.#sink !== undefined) return;
    this.#wantOutput = true;
    this.#flush();
  }

  #flush(): void {
    if (this.#flushing || this.#ended) return;
    this.#flushing = true;
    try {
      while (this.#wantOutput) {
        const frame = this.#control.shift() ?? this.#pongs.shift() ?? this.#nextData();
        if (frame === undefined) {
          if (this.#ending) {
            this.#ended = true;
            this.push(null);
          }
          break;
        }
        this.#stats.framesOut++;
        const sink = this.#sink;
        if (isDataFrame(frame)) {
          let more = true;
          for (const piece of frame) {
            this.#stats.bytesOut += piece.length;
            more = sink !== undefined ? sink.write(piece) : this.push(piece);
          }
          if (!more) this.#wantOutput = false;
        } else {
          this.#stats.bytesOut += frame.length;
          if (!(sink !== undefined ? sink.write(frame) : this.push(frame))) this.#wantOutput = false;
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  // Group-fair round-robin, one frame per turn (see the class doc).
  #nextData(): OutFrame | undefined {
    if (this.#ending && this.#closed) return undefined;
    return this.#scheduler.next(this.#o.maxFrameBytes);
  }

  // ---- inbound ----

  // A data payload may arrive in pieces (see FrameReader): the frame's SYN /
  // ACK act with the first piece, its FIN / RST with the last, so a stream
  // sees exactly the order of a whole frame without the payload assembled.
  #onPiece(h: FrameHeader, piece: Buffer, first: boolean, last: boolean): void {
    if (first) this.#stats.framesIn++;
    switch (h.type) {
      case FrameType.data:
      case FrameType.windowUpdate: {
        const flags = first && last ? h.flags : first ? h.flags & ~END_FLAGS : last ? h.flags & END_FLAGS : 0;
        this.#onStreamFrame(h, flags, piece);
        return;
      }
      case FrameType.ping:
        if (h.flags & Flag.syn) this.#answerPing(h.length);
        else if (h.flags & Flag.ack) this.#pinger.onPong(h.length);
        return;
      case FrameType.goAway:
        this.#remoteGoAway = true;
        this.emit('goaway', h.length);
        return;
    }
  }

  // A pong costs output and, while the transport is not draining, memory; a
  // peer's ping flood must cost neither, so answers are rate-limited and the
  // queue of unsent pongs is bounded. Nothing else is dropped: a lost window
  // announcement, window update or RST would stall or leak a stream.
  #answerPing(opaque: number): void {
    if (this.#closed) return;
    if (this.#pongs.length >= MAX_QUEUED_PONGS || !this.#pingBucket.take()) {
      this.#stats.pingsDropped++;
      return;
    }
    this.#pongs.push(encodeHeader(FrameType.ping, Flag.ack, 0, opaque));
    this.#flush();
  }

  #onStreamFrame(h: FrameHeader, flags: number, payload: Buffer): void {
    const id = h.streamId;
    if (flags & Flag.rst) this.#stats.resetsIn++;
    if (id === 0) throw new MuxError('PT_ERR_MUX_PROTOCOL', 'stream frame with stream id 0');
    const existing = this.#streams.get(id);
    if (!(flags & Flag.syn)) {
      existing?.onFrame(h.type, flags, h.length, payload); // unknown id: ignored (see class doc)
      return;
    }
    if (existing !== undefined) throw new MuxError('PT_ERR_MUX_PROTOCOL', `duplicate SYN for live stream ${id}`);
    if ((id & 1) === (this.#o.client ? 1 : 0)) {
      throw new MuxError('PT_ERR_MUX_PROTOCOL', `SYN with stream id ${id} of the wrong parity`);
    }
    if (flags & Flag.rst) return;
    if (
      (this.#localGoAway && this.#refuseAfterGoAway) ||
      this.#ending ||
      this.#streams.size >= this.#o.maxConcurrentStreams ||
      this.#acceptQueue.length >= this.#o.acceptBacklog
    ) {
      this.sendControl(encodeHeader(FrameType.windowUpdate, Flag.rst, id, 0), true);
      return;
    }
    const s = new Stream(this, id, this.#settings, false);
    this.#streams.set(id, s);
    s.onFrame(h.type, flags, h.length, payload);
    if (this.listenerCount('stream') > 0) {
      this.#acceptStream(s);
      this.emit('stream', s);
      return;
    }
    const waiter = this.#acceptWaiters.shift();
    if (waiter !== undefined) {
      this.#acceptStream(s);
      waiter.resolve(s);
    } else {
      this.#acceptQueue.push(s); // ACKed when taken by accept()
    }
  }

  #acceptStream(s: Stream): void {
    this.#stats.streamsAccepted++;
    s.deferAck(this.#o.ackDelayMs);
  }

  // ---- teardown ----

  // A protocol violation (MuxError PT_ERR_MUX_PROTOCOL) or a local handler that
  // threw while we delivered a frame ('data'/'stream' listeners run inside the
  // decoder loop): GoAway with the matching code, then close the session.
  #protocolError(err: unknown): void {
    const isProtocol = err instanceof MuxError && err.code === 'PT_ERR_MUX_PROTOCOL';
    const e = isProtocol ? err : new MuxError('PT_ERR_MUX_INTERNAL', undefined, { cause: err });
    this.#decoder.stop();
    if (!this.#localGoAway) {
      this.#localGoAway = true;
      this.#control.push(encodeHeader(FrameType.goAway, 0, 0, isProtocol ? GoAwayCode.protocolError : GoAwayCode.internalError));
    }
    this.#closeError ??= e;
    this.#shutdown(e);
    this.#finishOutput();
  }

  // Ends the readable side once queued control frames are out, then destroys.
  #finishOutput(): void {
    if (this.#ending) return;
    this.#ending = true;
    const done = (): void => {
      this.destroy(this.#closeError ?? null);
    };
    this.once('end', done);
    this.#endTimer = setTimeout(done, this.#o.goAwayTimeoutMs).unref();
    this.#flush();
  }

  // Idempotent: fail every stream, waiter and ping; stop timers.
  #shutdown(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError ??= err;
    this.#decoder.stop();
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#acceptQueue = [];
    this.#scheduler.clear();
    this.#pongs.clear();
    for (const s of streams) s.fail(err);
    for (const w of this.#acceptWaiters.splice(0)) w.reject(err);
    this.#pinger.rejectAll(err);
    for (const w of this.#drainWaiters.splice(0)) w();
  }
}

/** @internal Where a session's frames go instead of its readable side (see Session.outputTo). */
export interface OutputSink {
  /** Takes one chunk of a frame; false when no more should come until Session.outputDrained(). */
  write(chunk: Buffer): boolean;
}

function isDataFrame(f: OutFrame): f is readonly [Buffer, ...Buffer[]] {
  return Array.isArray(f);
}
