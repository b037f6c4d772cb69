import { Duplex } from 'node:stream';
import { destroyQuietly, MuxError } from './errors.ts';
import { encodeHeader, Flag, FrameType, INITIAL_STREAM_WINDOW, type OutFrame } from './frame.ts';

/** The header's place in a data frame being built. */
const NO_HEADER_YET = Buffer.alloc(0);

/**
 * Paces window grants (see {@link Stream.setGrantPacer}): a byte budget that
 * may run into debt. A grant waits while `waitMs()` is above 0, and is
 * charged in full when sent.
 */
export interface GrantPacer {
  /** How long until the budget is out of debt, ms (0: grant now). */
  waitMs(): number;
  /** Records `bytes` granted. */
  charge(bytes: number): void;
}

/**
 * What a Stream needs from its Session. Implemented by Session; not exported
 * from the package.
 * @internal
 */
export interface StreamHost {
  /** Queue a control frame (window update, RST); it jumps the data queue. */
  sendControl(frame: Buffer, isReset: boolean): void;
  /** The stream has data or a FIN it can send now. */
  markReady(stream: Stream): void;
  /** The stream is done on the wire (both FINs, or RST): remove it from the map now. */
  forget(stream: Stream): void;
  readonly hostClosed: boolean;
  /** Round-trip time (ms) for window auto-tuning, or undefined while none was measured. */
  rttEstimateMs(): number | undefined;
  /** Takes `bytes` of window growth from the session's budget; false (nothing taken) when it would go over. */
  reserveWindowGrowth(bytes: number): boolean;
  /** Gives back growth taken by {@link reserveWindowGrowth} (the stream is gone). */
  releaseWindowGrowth(bytes: number): void;
}

/** Timers and sizes a stream takes from its session options. @internal */
export interface StreamSettings {
  maxWindowBytes: number;
  autoTuneWindow: boolean;
  openTimeoutMs: number;
  closeTimeoutMs: number;
}

/**
 * One yamux stream, a Node `Duplex`.
 *
 * - `end()` sends FIN (half-close): the peer gets `'end'` and can still write back.
 *   On a stream the peer opened, the peer's FIN is then due within
 *   `streamCloseTimeoutMs` (else RST); a stream we opened waits for the
 *   peer's answer for as long as the application keeps it, until
 *   {@link expectPeerEnd} says the answer is complete.
 * - `destroy()` before both sides closed sends RST; the peer's stream errors
 *   with MuxError `PT_ERR_MUX_STREAM_RESET`.
 * - Receive window is granted back as the application reads, never on arrival:
 *   a paused reader stops the far writer after one window. With
 *   `autoTuneWindow` that window doubles (up to `maxStreamWindowBytes`) each
 *   time half of it was consumed within two round trips.
 * - Output scheduling: streams take turns one frame at a time, round-robin
 *   across scheduling groups first ({@link setGroup}), then within a group.
 * - Error policy: `destroy(err)` emits `'error'` only if an `'error'` listener
 *   exists (pipeline, `for await`, `events.once` all add one); otherwise the
 *   stream closes without `'error'` and the error is kept in {@link closeError}.
 */
export class Stream extends Duplex {
  /** Stream ID: odd when opened by the client side, even by the server side. */
  readonly id: number;
  readonly #host: StreamHost;
  readonly #settings: StreamSettings;
  #sendWindow = INITIAL_STREAM_WINDOW;
  #recvWindow = INITIAL_STREAM_WINDOW; // credit the peer still has
  #windowSize: number; // our receive window: unread bytes + credit never exceed it
  #grownBytes = 0; // window growth taken from the session's budget, given back when the stream is gone
  #lastGrantAt: number; // performance.now() of the last window update (or of creation)
  // Written chunks on their way out, with the offset into the first; a data frame takes up to
  // maxFrameBytes across them (one frame for a turn's many small writes, not one frame each).
  #outChunks: Buffer[] | undefined;
  #outOffset = 0;
  #outCb: ((err?: Error | null) => void) | undefined;
  #finalCb: ((err?: Error | null) => void) | undefined;
  #localFin = false;
  #remoteFin = false;
  #acked: boolean;
  /** After our FIN the peer's is due within closeTimeoutMs: from the start on a stream the peer opened, after expectPeerEnd() on ours. */
  #peerEndDue: boolean;
  #gone = false; // no longer in the session map; no frame will reach us
  #openTimer: NodeJS.Timeout | undefined;
  #closeTimer: NodeJS.Timeout | undefined;
  #closeError: Error | undefined;
  #group: string | undefined;
  #pacer: GrantPacer | undefined;
  #paceTimer: NodeJS.Timeout | undefined;
  #ackOwed = false; // accepted, ACK not sent yet (see deferAck)
  #ackDelta = 0; // the window announcement the ACK carries
  #ackTimer: NodeJS.Timeout | undefined;
  /** @internal round-robin bookkeeping owned by the session */
  inReadyQueue = false;

  /** @internal Streams are created by `Session.open()` / inbound SYN. */
  constructor(host: StreamHost, id: number, settings: StreamSettings, outbound: boolean) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
    this.id = id;
    this.#host = host;
    this.#settings = settings;
    this.#acked = !outbound;
    this.#peerEndDue = !outbound;
    // We advertise our full window right away (SYN or ACK carries the delta);
    // an auto-tuned window starts at the spec's and grows as it is consumed.
    this.#windowSize = settings.autoTuneWindow ? INITIAL_STREAM_WINDOW : settings.maxWindowBytes;
    this.#recvWindow = this.#windowSize;
    this.#lastGrantAt = performance.now();
    if (outbound) {
      this.#openTimer = setTimeout(() => {
        this.#openTimer = undefined;
        this.#abort(new MuxError('PT_ERR_MUX_OPEN_TIMEOUT', `stream ${id} not acknowledged within ${settings.openTimeoutMs} ms`));
      }, settings.openTimeoutMs).unref();
    }
  }

  /** The error this stream ended with (RST, timeout, session death), even when no 'error' was emitted. */
  get closeError(): Error | undefined {
    return this.#closeError;
  }

  /** Current receive window (bytes): the most this stream holds unread. Fixed, or grown by `autoTuneWindow`. */
  get receiveWindowBytes(): number {
    return this.#windowSize;
  }

  /** Scheduling group set by {@link setGroup}; undefined: the group shared by all ungrouped streams. */
  get group(): string | undefined {
    return this.#group;
  }

  /**
   * Puts the stream in a scheduling group (e.g. a tenant id); `undefined` puts it back in
   * the group shared by all ungrouped streams. The session's output takes turns across
   * groups that have data to send, then across the streams within a group, one frame
   * (≤ `maxFrameBytes`) per turn: a group with 200 busy streams gets the same share of
   * the link as a group with one busy stream. A change applies from the stream's next turn. Keys
   * are held only while the group has data queued. Returns the stream (chainable).
   */
  setGroup(key: string | undefined): this {
    this.#group = key;
    return this;
  }

  /**
   * Paces this stream's receive side: window credit is granted back only as
   * fast as `pacer` allows, so the peer can send no faster than that (one
   * pacer may be shared by many streams: a rate for all of them together).
   * A paused reader is unaffected (it grants nothing anyway); a fast one
   * gets its credit later instead of at once. `undefined` removes pacing.
   * Returns the stream (chainable).
   */
  setGrantPacer(pacer: GrantPacer | undefined): this {
    this.#pacer = pacer;
    return this;
  }

  /**
   * @internal The stream was accepted: its ACK, with the window announcement,
   * goes out on the first frame the stream sends, or on its own after
   * `delayMs` (at once when 0).
   */
  deferAck(delayMs: number): void {
    if (delayMs <= 0) {
      this.#host.sendControl(this.windowAnnouncement(Flag.ack), false);
      return;
    }
    this.#ackOwed = true;
    this.#ackDelta = this.#windowSize - INITIAL_STREAM_WINDOW;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      if (!this.#ackOwed || this.#gone || this.#host.hostClosed) return;
      this.#ackOwed = false;
      this.#host.sendControl(encodeHeader(FrameType.windowUpdate, Flag.ack, this.id, this.#ackDelta), false);
    }, delayMs);
  }

  // The ACK flag for the frame about to go out, when one is owed (its window
  // delta is then the caller's to send: see `#ackDelta`), else 0.
  #takeAck(): number {
    if (!this.#ackOwed) return 0;
    this.#ackOwed = false;
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    return Flag.ack;
  }

  /** @internal SYN or ACK frame advertising our window (delta above the spec's 256 KiB). */
  windowAnnouncement(flag: number): Buffer {
    return encodeHeader(FrameType.windowUpdate, flag, this.id, this.#windowSize - INITIAL_STREAM_WINDOW);
  }

  // ---- inbound frames (called by the session) ----

  /** @internal Handles a data / window-update frame; throws MuxError PT_ERR_MUX_PROTOCOL on window overrun. */
  onFrame(type: number, flags: number, length: number, payload: Buffer): void {
    if (flags & Flag.ack && !this.#acked) {
      this.#acked = true;
      if (this.#openTimer) clearTimeout(this.#openTimer);
      this.#openTimer = undefined;
    }
    if (type === FrameType.windowUpdate) {
      if (length > 0) {
        this.#sendWindow += length;
        if (this.hasSendable()) this.#host.markReady(this);
      }
    } else if (payload.length > 0) {
      if (payload.length > this.#recvWindow) {
        throw new MuxError('PT_ERR_MUX_PROTOCOL', `stream ${this.id}: ${payload.length} bytes exceed receive window ${this.#recvWindow}`);
      }
      this.#recvWindow -= payload.length;
      if (!this.#remoteFin && !this.destroyed) {
        this.push(payload);
        this.#maybeGrant();
      }
    }
    if (flags & Flag.fin && !this.#remoteFin) {
      this.#remoteFin = true;
      if (!this.destroyed) this.push(null);
      if (this.#closeTimer) clearTimeout(this.#closeTimer);
      this.#closeTimer = undefined;
      if (this.#localFin) this.#forget();
    }
    if (flags & Flag.rst) {
      this.#forget();
      this.fail(new MuxError('PT_ERR_MUX_STREAM_RESET', `stream ${this.id} reset by peer`));
    }
  }

  /** @internal Session-driven failure (peer RST, session death): no RST is sent. */
  fail(err: Error): void {
    this.#forget();
    if (!this.destroyed) this.destroy(err);
  }

  // ---- receive-side flow control ----

  // Grant back what the application consumed: consumed = window - held - still-open.
  #maybeGrant(): void {
    if (this.#remoteFin || this.#gone || this.#paceTimer !== undefined) return;
    if (this.#windowSize - this.readableLength - this.#recvWindow < this.#windowSize / 2) return;
    if (this.#pacer !== undefined) {
      const waitMs = this.#pacer.waitMs();
      if (waitMs > 0) {
        this.#paceTimer = setTimeout(() => {
          this.#paceTimer = undefined;
          this.#maybeGrant();
        }, waitMs);
        return;
      }
    }
    if (this.#settings.autoTuneWindow) this.#maybeGrowWindow();
    const delta = this.#windowSize - this.readableLength - this.#recvWindow;
    this.#pacer?.charge(delta);
    this.#recvWindow += delta;
    const ack = this.#takeAck();
    this.#host.sendControl(encodeHeader(FrameType.windowUpdate, ack, this.id, ack === 0 ? delta : delta + this.#ackDelta), false);
  }

  // Runs just before a grant. A sender limited only by our window delivers
  // half a window per half round trip; if the application consumed half a
  // window within two round trips, the window (not the reader, not the link)
  // is the likely limit, so it doubles. Growth is only ever triggered by
  // reading, so a paused reader keeps its current window as its bound.
  #maybeGrowWindow(): void {
    const now = performance.now();
    const sinceLastMs = now - this.#lastGrantAt;
    this.#lastGrantAt = now;
    if (this.#windowSize >= this.#settings.maxWindowBytes) return;
    const rttMs = this.#host.rttEstimateMs();
    if (rttMs === undefined || sinceLastMs >= 2 * rttMs) return;
    const next = Math.min(this.#windowSize * 2, this.#settings.maxWindowBytes);
    // The session's budget (sessionWindowGrowthBytes) bounds what all its streams hold together.
    if (!this.#host.reserveWindowGrowth(next - this.#windowSize)) return;
    this.#grownBytes += next - this.#windowSize;
    this.#windowSize = next;
  }

  override _read(): void {
    this.#maybeGrant();
  }

  // biome-ignore lint/suspicious/noExplicitAny: Readable.read's own return type
  override read(size?: number): any {
    const chunk: unknown = super.read(size);
    if (chunk !== null) this.#maybeGrant();
    return chunk;
  }

  // ---- send side ----

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#send(chunk.length === 0 ? [] : [chunk], cb);
  }

  /** Chunks written while the previous ones were on their way: they leave together, in frames of up to maxFrameBytes. */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const out: Buffer[] = [];
    for (const c of chunks) if (c.chunk.length > 0) out.push(c.chunk);
    this.#send(out, cb);
  }

  #send(chunks: Buffer[], cb: (err?: Error | null) => void): void {
    if (this.#gone || this.#host.hostClosed) {
      cb(this.#closeError ?? new MuxError('PT_ERR_MUX_SESSION_CLOSED', `stream ${this.id} is closed`));
      return;
    }
    if (chunks.length === 0) {
      cb();
      return;
    }
    this.#outChunks = chunks;
    this.#outOffset = 0;
    this.#outCb = cb;
    this.#host.markReady(this);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#gone) {
      cb();
      return;
    }
    this.#finalCb = cb;
    this.#host.markReady(this);
  }

  /** @internal Something can go on the wire now (data within the window, or our FIN). */
  hasSendable(): boolean {
    if (this.#gone) return false;
    if (this.#outChunks !== undefined) return this.#sendWindow > 0;
    return this.#finalCb !== undefined && !this.#localFin;
  }

  /** @internal Next data frame (≤ maxFrameBytes and ≤ peer window) or our FIN, or undefined. */
  nextFrame(maxFrameBytes: number): OutFrame | undefined {
    if (this.#gone) return undefined;
    const chunks = this.#outChunks;
    if (chunks !== undefined) {
      if (this.#sendWindow === 0) return undefined;
      // Views of the written chunks, from the first unsent byte, up to the frame's limit.
      const limit = Math.min(maxFrameBytes, this.#sendWindow);
      const frame: Buffer[] = [NO_HEADER_YET];
      let n = 0;
      while (n < limit && chunks.length > 0) {
        const chunk = chunks[0]!;
        const take = Math.min(limit - n, chunk.length - this.#outOffset);
        frame.push(this.#outOffset === 0 && take === chunk.length ? chunk : chunk.subarray(this.#outOffset, this.#outOffset + take));
        n += take;
        this.#outOffset += take;
        if (this.#outOffset === chunk.length) {
          chunks.shift();
          this.#outOffset = 0;
        }
      }
      const ack = this.#takeAck();
      // The ACK rides on the data frame; a window announcement follows it as a window update.
      if (ack !== 0 && this.#ackDelta > 0) this.#host.sendControl(encodeHeader(FrameType.windowUpdate, 0, this.id, this.#ackDelta), false);
      frame[0] = encodeHeader(FrameType.data, ack, this.id, n);
      this.#sendWindow -= n;
      if (chunks.length === 0) {
        const cb = this.#outCb;
        this.#outChunks = undefined;
        this.#outCb = undefined;
        cb?.();
      }
      return frame as unknown as OutFrame;
    }
    const finalCb = this.#finalCb;
    if (finalCb === undefined || this.#localFin) return undefined;
    this.#localFin = true;
    this.#finalCb = undefined;
    // Per spec "Closing a stream": FIN on a window update, as hashicorp/yamux does.
    const ack = this.#takeAck();
    const frame = encodeHeader(FrameType.windowUpdate, Flag.fin | ack, this.id, ack === 0 ? 0 : this.#ackDelta);
    if (this.#remoteFin) {
      this.#forget();
    } else if (this.#peerEndDue) {
      // Only the side that accepted the stream answers and then waits for the opener to finish; the
      // opener's FIN ends its request, and the answer (a WATCH, `logs -f`, exec output) may take hours.
      this.#armCloseTimer();
    }
    finalCb();
    return frame;
  }

  /**
   * The exchange on this stream is complete (on a stream we opened: its
   * answer was read to the end): once our FIN is sent (now, or by a later
   * `end()`), the peer's FIN is due within `streamCloseTimeoutMs`, else the
   * stream is reset (`PT_ERR_MUX_CLOSE_TIMEOUT`). A stream the peer opened
   * has that deadline anyway. Returns the stream (chainable).
   */
  expectPeerEnd(): this {
    this.#peerEndDue = true;
    if (this.#localFin && !this.#remoteFin && !this.#gone && this.#closeTimer === undefined) this.#armCloseTimer();
    return this;
  }

  #armCloseTimer(): void {
    this.#closeTimer = setTimeout(() => {
      this.#closeTimer = undefined;
      this.#abort(new MuxError('PT_ERR_MUX_CLOSE_TIMEOUT', `stream ${this.id}: no FIN from peer within ${this.#settings.closeTimeoutMs} ms`));
    }, this.#settings.closeTimeoutMs).unref();
  }

  // ---- teardown ----

  // Local abort: send RST (if still on the wire) then fail.
  #abort(err: Error): void {
    this.#sendRst();
    this.fail(err);
  }

  #sendRst(): void {
    this.#takeAck(); // a reset needs no ACK before it
    if (this.#gone || this.#host.hostClosed) return;
    this.#host.sendControl(encodeHeader(FrameType.windowUpdate, Flag.rst, this.id, 0), true);
  }

  #forget(): void {
    if (this.#openTimer) clearTimeout(this.#openTimer);
    if (this.#closeTimer) clearTimeout(this.#closeTimer);
    if (this.#paceTimer) clearTimeout(this.#paceTimer);
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#paceTimer = undefined;
    this.#ackTimer = undefined;
    this.#openTimer = undefined;
    this.#closeTimer = undefined;
    if (this.#gone) return;
    this.#gone = true;
    this.#outChunks = undefined;
    this.#outCb = undefined;
    if (this.#grownBytes > 0) this.#host.releaseWindowGrowth(this.#grownBytes);
    this.#grownBytes = 0;
    this.#host.forget(this);
  }

  /** Closes the stream. Before both sides have closed, this sends RST to the peer. See the class doc for the error policy. */
  override destroy(err?: Error | null): this {
    return destroyQuietly(this, err, (e) => {
      this.#closeError ??= e;
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#sendRst();
    this.#forget();
    cb(err);
  }
}
