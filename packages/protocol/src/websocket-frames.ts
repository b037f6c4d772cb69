import { TunnelError } from './errors.ts';

/**
 * RFC 6455 §5 framing for the tunnel's byte transport: a streaming reader
 * that hands binary payload bytes on as views of the chunks they arrived in
 * (no message assembly, no copy), and a header encoder for frames whose
 * payload is written after the header as separate buffers.
 */

/** Opcodes (§5.2). */
export const WsOpcode = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** What the reader does with each frame's bytes. */
export interface WsFrameSink {
  /** Payload bytes of a binary message (any fragment), unmasked, in order. */
  data(piece: Buffer): void;
  /** A whole control frame (close, ping, pong) exactly as received, header and masked payload. */
  control(raw: Buffer): void;
  /** A text frame began: the tunnel carries binary messages only. Nothing more is read. */
  text(): void;
}

/** Longest payload a control frame may carry (§5.5). */
const MAX_CONTROL_PAYLOAD = 125;
/** Longest header: 2 + 8 (64-bit length) + 4 (mask key). */
const MAX_HEADER_BYTES = 14;

/**
 * Reads WebSocket frames from a byte stream split at arbitrary points.
 * `expectMasked` is the role's rule (§5.1): a server requires masked frames
 * from its client, a client requires unmasked frames from its server.
 * Violations (reserved bits or opcodes, a bad fragment sequence, an
 * oversized or fragmented control frame, the wrong masking) throw TunnelError
 * `PT_ERR_WS_PROTOCOL`, after which the reader ignores further input.
 */
export class WsFrameReader {
  readonly #sink: WsFrameSink;
  readonly #expectMasked: boolean;
  readonly #head = Buffer.allocUnsafe(MAX_HEADER_BYTES);
  #headFill = 0;
  #inFrame = false;
  #remaining = 0;
  #mask: Buffer | undefined; // a non-zero key of the current frame; undefined for none or all-zero
  #maskOffset = 0;
  #control: Buffer[] | undefined; // a control frame's raw bytes, being gathered
  #inMessage = false; // a binary message with more fragments to come
  #stopped = false;

  constructor(expectMasked: boolean, sink: WsFrameSink) {
    this.#expectMasked = expectMasked;
    this.#sink = sink;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (!this.#stopped && pos < end) {
      if (!this.#inFrame) {
        pos = this.#readHeader(chunk, pos);
        continue;
      }
      const n = Math.min(this.#remaining, end - pos);
      const piece = n === end ? chunk : chunk.subarray(pos, pos + n);
      pos += n;
      this.#remaining -= n;
      if (this.#control !== undefined) {
        this.#control.push(piece);
        if (this.#remaining === 0) this.#endControl();
        continue;
      }
      if (this.#mask !== undefined) {
        unmask(piece, this.#mask, this.#maskOffset);
        this.#maskOffset = (this.#maskOffset + n) & 3;
      }
      if (this.#remaining === 0) this.#inFrame = false;
      this.#sink.data(piece);
    }
  }

  stop(): void {
    this.#stopped = true;
  }

  // Gathers header bytes from `chunk` at `pos`; returns the new position.
  #readHeader(chunk: Buffer, pos: number): number {
    const h = this.#head;
    // The header's length is known from its first two bytes.
    while (this.#headFill < 2 && pos < chunk.length) h[this.#headFill++] = chunk[pos++]!;
    if (this.#headFill < 2) return pos;
    const b1 = h[1]!;
    const len7 = b1 & 0x7f;
    const headerBytes = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
    const k = Math.min(headerBytes - this.#headFill, chunk.length - pos);
    chunk.copy(h, this.#headFill, pos, pos + k);
    this.#headFill += k;
    pos += k;
    if (this.#headFill < headerBytes) return pos;
    this.#headFill = 0;
    this.#startFrame(h, headerBytes);
    return pos;
  }

  #startFrame(h: Buffer, headerBytes: number): void {
    const b0 = h[0]!;
    const b1 = h[1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    let length = len7;
    if (len7 === 126) length = h.readUInt16BE(2);
    else if (len7 === 127) {
      const high = h.readUInt32BE(2);
      if (high > 0x1f_ffff) this.#fail('a payload length beyond 2^53 - 1');
      length = high * 2 ** 32 + h.readUInt32BE(6);
    }
    if ((b0 & 0x70) !== 0) this.#fail('reserved bits set (no extension was negotiated)');
    if (masked !== this.#expectMasked) this.#fail(masked ? 'a masked frame from the server' : 'an unmasked frame from the client');
    this.#remaining = length;
    this.#inFrame = true;
    if (opcode >= 0x8) {
      if (opcode > WsOpcode.pong) this.#fail(`reserved opcode ${opcode}`);
      if (!fin || length > MAX_CONTROL_PAYLOAD) this.#fail('a fragmented or oversized control frame');
      this.#control = [Buffer.from(h.subarray(0, headerBytes))];
      if (length === 0) this.#endControl();
      return;
    }
    if (opcode === WsOpcode.text) {
      this.stop();
      this.#sink.text();
      return;
    }
    if (opcode === WsOpcode.binary) {
      if (this.#inMessage) this.#fail('a new message inside a fragmented one');
    } else if (opcode === WsOpcode.continuation) {
      if (!this.#inMessage) this.#fail('a continuation frame outside a message');
    } else {
      this.#fail(`reserved opcode ${opcode}`);
    }
    this.#inMessage = !fin;
    this.#maskOffset = 0;
    this.#mask = masked && h.readUInt32BE(headerBytes - 4) !== 0 ? Buffer.from(h.subarray(headerBytes - 4, headerBytes)) : undefined;
    if (length === 0) this.#inFrame = false;
  }

  #endControl(): void {
    const raw = this.#control!.length === 1 ? this.#control![0]! : Buffer.concat(this.#control!);
    this.#control = undefined;
    this.#inFrame = false;
    this.#sink.control(raw);
  }

  #fail(why: string): never {
    this.stop();
    throw new TunnelError('PT_ERR_WS_PROTOCOL', `WebSocket protocol violation: ${why}`);
  }
}

/**
 * Encodes the header of one final frame of `opcode` with a payload of
 * `length` bytes. `maskKey` (4 bytes) sets the mask bit and is written
 * after the length: the caller masks the payload with it (an all-zero key
 * leaves the payload as it is).
 */
export function encodeWsHeader(opcode: number, length: number, maskKey?: Buffer): Buffer {
  const h = Buffer.allocUnsafe(wsHeaderBytes(length, maskKey));
  writeWsHeader(h, opcode, length, maskKey);
  return h;
}

/** The size of the header {@link encodeWsHeader} encodes. */
export function wsHeaderBytes(length: number, maskKey?: Buffer): number {
  return 2 + (length < 126 ? 0 : length < 0x1_0000 ? 2 : 8) + (maskKey === undefined ? 0 : 4);
}

/** Writes that header at the start of `target`; returns its size. */
export function writeWsHeader(target: Buffer, opcode: number, length: number, maskKey?: Buffer): number {
  const ext = length < 126 ? 0 : length < 0x1_0000 ? 2 : 8;
  target[0] = 0x80 | opcode;
  const maskBit = maskKey === undefined ? 0 : 0x80;
  if (ext === 0) {
    target[1] = maskBit | length;
  } else if (ext === 2) {
    target[1] = maskBit | 126;
    target.writeUInt16BE(length, 2);
  } else {
    target[1] = maskBit | 127;
    target.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    target.writeUInt32BE(length >>> 0, 6);
  }
  if (maskKey === undefined) return 2 + ext;
  maskKey.copy(target, 2 + ext);
  return 6 + ext;
}

/** XORs `buf` in place with `key`, starting at key byte `offset` (0–3). */
export function unmask(buf: Buffer, key: Buffer, offset: number): void {
  for (let i = 0; i < buf.length; i++) buf[i]! ^= key[(i + offset) & 3]!;
}
