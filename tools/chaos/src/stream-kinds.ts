// What a chaos run carries: the kinds of stream the tunnel must get right,
// their sizes (chosen from the run's PRNG), the bytes each must arrive as,
// and what the runner makes of how it ended.
import { blobSha256 } from '@pipeops/tunnel-testkit';
import { digestOf, logLines, watchEvents } from './payload.ts';
import type { Prng } from './prng.ts';

export type Kind = 'plain' | 'chunked' | 'upload' | 'watch' | 'logs' | 'exec' | 'portforward';
export const KINDS: readonly Kind[] = ['plain', 'chunked', 'upload', 'watch', 'logs', 'exec', 'portforward'];

/** How an exec or port-forward is upgraded (kubectl speaks both); 'http' for the other kinds. */
export type Transport = 'http' | 'websocket' | 'spdy';

/** One stream of a run, fully determined by its fields. */
export interface StreamSpec {
  kind: Kind;
  transport: Transport;
  /** Seeds the stream's bytes. */
  seed: string;
  /** plain, chunked, upload, and SPDY exec/port-forward: bytes; WebSocket exec/port-forward: messages; watch: events; logs: lines. */
  count: number;
  /** watch, logs: pause between the upstream's writes (3 items each), in ms. */
  intervalMs: number;
  /** WebSocket exec/port-forward: largest message, in bytes. */
  maxMessageBytes: number;
}

/** How a stream ended, as the runner saw it. */
export type Ending =
  /** Every byte, in order, and a clean end. */
  | 'complete'
  /** An error the runner was told about (reset, aborted body, non-2xx, 1006…). */
  | 'error'
  /** A clean end (framing complete, 1000 close, SPDY bye) with bytes missing or wrong: the failure this harness hunts. */
  | 'truncated';

export interface StreamResult {
  ending: Ending;
  /** Bytes the runner received (upload: the body bytes the upstream reported). */
  bytes: number;
  expectedBytes: number;
  /** `Date.now()` when the ending was seen. */
  at: number;
  /** What went wrong (error, truncated). */
  detail?: string;
}

/** The bytes a stream must deliver: how many and their SHA-256 (hex). */
export interface Expected {
  bytes: number;
  sha256: string;
}

/** A stream of `kind` with sizes from `rnd`: up to a few MiB, or a second or two of paced events. */
export function chooseSpec(kind: Kind, rnd: Prng, seed: string): StreamSpec {
  const spec: StreamSpec = { kind, transport: 'http', seed, count: 0, intervalMs: 0, maxMessageBytes: 0 };
  switch (kind) {
    case 'plain':
    case 'chunked':
    case 'upload':
      return { ...spec, count: rnd.int(64 * 1024, 4 * 1024 * 1024) };
    case 'watch':
    case 'logs':
      return { ...spec, count: rnd.int(30, 150), intervalMs: rnd.int(5, 25) };
    case 'exec':
    case 'portforward':
      if (rnd.chance(0.5)) return { ...spec, transport: 'spdy', count: rnd.int(64 * 1024, 2 * 1024 * 1024) };
      return { ...spec, transport: 'websocket', count: rnd.int(20, 200), maxMessageBytes: rnd.pick([512, 4096, 16_384, 65_536]) };
  }
}

/** The messages of a WebSocket exec or port-forward spec: channel 0, then seeded bytes. */
export function* execMessages(spec: StreamSpec): Generator<Buffer> {
  let at = 0;
  const sizes = messageSizes(spec);
  for (const size of sizes) {
    const m = Buffer.alloc(size + 1);
    for (let i = 1; i <= size; i++) m[i] = (at + i * 31) & 0xff;
    at += size;
    yield m;
  }
}

function messageSizes(spec: StreamSpec): number[] {
  // A tiny LCG seeded from the spec: sizes depend only on the spec.
  let x = 0;
  for (let i = 0; i < spec.seed.length; i++) x = (x * 33 + spec.seed.charCodeAt(i)) >>> 0;
  const out: number[] = [];
  for (let i = 0; i < spec.count; i++) {
    x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0;
    out.push(1 + (x % spec.maxMessageBytes));
  }
  return out;
}

/** What the runner must receive for `spec` (upload: what the upstream must report having read). */
export function expectedOf(spec: StreamSpec): Expected {
  if (spec.transport === 'websocket') return digestOf(execMessages(spec));
  switch (spec.kind) {
    case 'watch':
      return digestOf(watchEvents(spec.count, spec.seed));
    case 'logs':
      return digestOf(logLines(spec.count, spec.seed));
    default:
      return { bytes: spec.count, sha256: blobSha256(spec.count, spec.seed) };
  }
}
