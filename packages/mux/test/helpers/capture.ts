import { FrameDecoder } from '../../src/decoder.ts';
import { Flag, FrameType, HEADER_BYTES, writeHeader, type FrameHeader } from '../../src/frame.ts';
import type { Session } from '../../src/index.ts';

/**
 * Decodes every frame `session` produces on its readable side (what goes to its
 * transport), in output order, into the returned array. Attaching the 'data'
 * listener starts the output flowing; on a session from createSession it only
 * listens alongside the transport.
 */
export function captureOutput(session: Session): FrameHeader[] {
  const frames: FrameHeader[] = [];
  const decoder = new FrameDecoder(2 ** 32 - 1, (h) => frames.push(h));
  session.on('data', (c: Buffer) => decoder.push(c));
  return frames;
}

/** `count` ping SYN frames back to back, opaque values `first`, `first + 1`…, as one buffer. */
export function pingFrames(count: number, first = 0): Buffer {
  const b = Buffer.allocUnsafe(count * HEADER_BYTES);
  for (let i = 0; i < count; i++) writeHeader(b, { type: FrameType.ping, flags: Flag.syn, streamId: 0, length: first + i }, i * HEADER_BYTES);
  return b;
}

export const isPong = (f: FrameHeader): boolean => f.type === FrameType.ping && f.flags === Flag.ack;
