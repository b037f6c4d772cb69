import type { TestContext } from 'node:test';
import { FrameDecoder } from '../../src/decoder.ts';
import { encodeDataFrame, encodeHeader, type FrameHeader } from '../../src/frame.ts';
import { createSession, type Session, type SessionOptions } from '../../src/index.ts';
import type { TransportKind } from './transports.ts';

export interface RawFrame extends FrameHeader {
  payload: Buffer;
}

/**
 * A session on one end of the transport and a hand-driven peer on the other:
 * the test writes raw frames and inspects every frame the session sends.
 */
export interface RawPeer {
  session: Session;
  frames: RawFrame[];
  /** Sends one frame (data frames carry `payload`; other types use `length`). */
  send(type: number, flags: number, streamId: number, lengthOrPayload: number | Buffer): void;
  /** Writes raw bytes as they are. */
  sendBytes(b: Buffer): void;
  /** Resolves with the first frame (already received or future) matching `pred`. */
  waitFrame(pred: (f: RawFrame) => boolean, deadlineMs?: number): Promise<RawFrame>;
}

export async function rawPeer(t: TestContext, kind: TransportKind, opts: SessionOptions): Promise<RawPeer> {
  const pair = await kind.create();
  const session = createSession(pair.a, { keepAliveIntervalMs: 0, ...opts });
  const frames: RawFrame[] = [];
  const waiters: { pred: (f: RawFrame) => boolean; resolve: (f: RawFrame) => void }[] = [];
  const decoder = new FrameDecoder(2 ** 32 - 1, (h, payload) => {
    const f = { ...h, payload: Buffer.from(payload) };
    frames.push(f);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (w?.pred(f)) {
        waiters.splice(i, 1);
        w.resolve(f);
      }
    }
  });
  pair.b.on('data', (c: Buffer) => decoder.push(c));
  pair.b.on('error', () => {});
  t.after(async () => {
    session.destroy();
    await pair.close();
  });
  return {
    session,
    frames,
    send(type, flags, streamId, x) {
      pair.b.write(typeof x === 'number' ? encodeHeader(type as 0, flags, streamId, x) : encodeDataFrame(flags, streamId, x));
    },
    sendBytes(b) {
      pair.b.write(b);
    },
    waitFrame(pred, deadlineMs = 5_000) {
      const found = frames.find(pred);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('expected frame not received')), deadlineMs);
        waiters.push({
          pred,
          resolve: (f) => {
            clearTimeout(timer);
            resolve(f);
          },
        });
      });
    },
  };
}
