/**
 * yamux frame header codec (hashicorp/yamux `spec.md`, "Framing").
 *
 * > Each frame contains a header like: Version (8 bits), Type (8 bits),
 * > Flags (16 bits), StreamID (32 bits), Length (32 bits). This means that
 * > each header has a 12 byte overhead. All fields are encoded in network
 * > order (big endian).
 */

/** "This means that each header has a 12 byte overhead." */
export const HEADER_BYTES = 12;

/** "At the current time, the field is always set to 0, to indicate the initial version." */
export const PROTOCOL_VERSION = 0;

/** "When Yamux is initially starts each stream with a 256KB window size." (bytes) */
export const INITIAL_STREAM_WINDOW = 256 * 1024;

/** Type field ("Type Field"). */
export const FrameType = {
  /** "Used to transmit data. May transmit zero length payloads depending on the flags." */
  data: 0,
  /** "Used to updated the senders receive window size." */
  windowUpdate: 1,
  /** "Used to measure RTT. It can also be used to heart-beat and do keep-alive over TCP." */
  ping: 2,
  /** "Used to close a session." */
  goAway: 3,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Flag bits ("Flag Field"); combinable, e.g. `SYN | FIN`. */
export const Flag = {
  /** "Signals the start of a new stream … Also sent with a ping to indicate outbound." */
  syn: 0x1,
  /** "Acknowledges the start of a new stream … Also sent with a ping to indicate response." */
  ack: 0x2,
  /** "Performs a half-close of a stream." */
  fin: 0x4,
  /** "Reset a stream immediately." */
  rst: 0x8,
} as const;

/** GoAway codes ("Session termination"). */
export const GoAwayCode = { normal: 0, protocolError: 1, internalError: 2 } as const;
export type GoAwayCode = 0 | 1 | 2;

/**
 * A decoded header. `length` is, per "Length Field": the payload size for
 * data frames, the window delta for window updates, the opaque value for
 * pings and the error code for GoAway.
 */
export interface FrameHeader {
  version: number;
  type: number;
  flags: number;
  streamId: number;
  length: number;
}

/** Writes a 12-byte header into `target` at `offset` (default 0). */
export function writeHeader(target: Buffer, h: Omit<FrameHeader, 'version'>, offset = 0): void {
  target[offset] = PROTOCOL_VERSION;
  target[offset + 1] = h.type;
  target.writeUInt16BE(h.flags, offset + 2);
  target.writeUInt32BE(h.streamId >>> 0, offset + 4);
  target.writeUInt32BE(h.length >>> 0, offset + 8);
}

/** Encodes a header-only frame (window update, ping, GoAway, empty data). */
export function encodeHeader(type: FrameType, flags: number, streamId: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  writeHeader(b, { type, flags, streamId, length });
  return b;
}

/**
 * A frame on its way out: a header-only frame, or a data frame as its
 * header and views of the payload (one per written chunk it takes), handed
 * to the transport as separate chunks so that the payload is never copied
 * to join its header or its other pieces.
 */
export type OutFrame = Buffer | readonly [header: Buffer, ...payload: Buffer[]];

/** Encodes a data frame: header and payload in one buffer (one copy of the payload). */
export function encodeDataFrame(flags: number, streamId: number, payload: Buffer): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  writeHeader(b, { type: FrameType.data, flags, streamId, length: payload.length });
  payload.copy(b, HEADER_BYTES);
  return b;
}

/** Reads a header from `src` at `offset`; `src` must hold at least 12 bytes from there. */
export function readHeader(src: Buffer, offset = 0): FrameHeader {
  return {
    version: src[offset] ?? 0,
    type: src[offset + 1] ?? 0,
    flags: src.readUInt16BE(offset + 2),
    streamId: src.readUInt32BE(offset + 4),
    length: src.readUInt32BE(offset + 8),
  };
}
