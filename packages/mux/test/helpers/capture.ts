import { FrameDecoder } from '../../src/decoder.ts';
import { Flag, FrameType, HEADER_BYTES, writeHeader, type FrameHeader } from '../../src/frame.ts';
import type { Readable } from 'node:stream';

/**
 * Decodes every frame that comes out of `source`, in order, into the
 * returned array: a bare session's readable side (attaching the 'data'
 * listener starts its output flowing), or the far end of the transport of a
 * session from createSession (whose frames go to the transport, not to its
 * readable side), listening alongside the peer session.
 */
export function captureOutput(source: Readable): FrameHeader[] {
  const frames: FrameHeader[] = [];
  const decoder = new FrameDecoder(2 ** 32 - 1, (h) => frames.push(h));
  source.on('data', (c: Buffer) => decoder.push(c));
  return frames;
}

/** `count` ping SYN frames back to back, opaque values `first`, `first + 1`…, as one buffer. */
export function pingFrames(count: number, first = 0): Buffer {
  const b = Buffer.allocUnsafe(count * HEADER_BYTES);
  for (let i = 0; i < count; i++) writeHeader(b, { type: FrameType.ping, flags: Flag.syn, streamId: 0, length: first + i }, i * HEADER_BYTES);
  return b;
}

export const isPong = (f: FrameHeader): boolean => f.type === FrameType.ping && f.flags === Flag.ack;
