// What a runner does in the full-path scenarios, the same code for every
// side (tunnel-client, gateway endpoint, direct, chisel): only the Target
// differs.
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { Target } from './full-path.ts';
import { mbPerSecond } from './stats.ts';

const CHUNK = Buffer.alloc(64 * 1024, 0x5a);
export const SMALL_PATH = '/api/v1/namespaces/bench/configmaps/small';
export const WATCH_PATH = '/api/v1/namespaces/bench/configmaps?watch=true';

function url(t: Target, path: string): string {
  return `${t.origin}${t.prefix}${path}`;
}

/** GET `bytes` from the upstream's blob route; returns MB/s from request to last byte. */
export async function download(t: Target, bytes: number): Promise<number> {
  const start = process.hrtime.bigint();
  await fetchBlob(t, bytes);
  return mbPerSecond(bytes, process.hrtime.bigint() - start);
}

/** `count` downloads of `bytes` each at once; returns aggregate MB/s. */
export async function downloads(t: Target, count: number, bytes: number): Promise<number> {
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: count }, () => fetchBlob(t, bytes)));
  return mbPerSecond(count * bytes, process.hrtime.bigint() - start);
}

async function fetchBlob(t: Target, bytes: number): Promise<void> {
  const res = await request(url(t, `/bench/blob?bytes=${bytes}`), { dispatcher: t.dispatcher, headers: t.headers });
  if (res.statusCode !== 200) throw new Error(`blob via ${t.origin}: HTTP ${res.statusCode} ${await res.body.text()}`);
  let got = 0;
  for await (const chunk of res.body) got += (chunk as Buffer).length;
  if (got !== bytes) throw new Error(`blob via ${t.origin}: got ${got} bytes, expected ${bytes}`);
}

/** PUT `bytes` to the upstream's sink; returns MB/s from request to the sink's answer. */
export async function upload(t: Target, bytes: number): Promise<number> {
  const start = process.hrtime.bigint();
  const body = Readable.from(
    (function* () {
      for (let left = bytes; left > 0; left -= CHUNK.length) yield left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
    })(),
    { objectMode: false },
  );
  const res = await request(url(t, '/bench/sink'), {
    method: 'PUT',
    dispatcher: t.dispatcher,
    body,
    headers: { ...t.headers, 'content-type': 'application/octet-stream', 'content-length': String(bytes) },
  });
  const answer = await res.body.text();
  if (res.statusCode !== 200 || (JSON.parse(answer) as { bytes: number }).bytes !== bytes) {
    throw new Error(`upload via ${t.origin}: HTTP ${res.statusCode} ${answer}`);
  }
  return mbPerSecond(bytes, process.hrtime.bigint() - start);
}

/** One small GET; returns its latency in ms (request to last byte). */
export async function smallGet(t: Target): Promise<number> {
  const start = process.hrtime.bigint();
  const res = await request(url(t, SMALL_PATH), { dispatcher: t.dispatcher, headers: t.headers });
  const body = await res.body.text();
  if (res.statusCode !== 200 || body.length < 512) throw new Error(`small GET via ${t.origin}: HTTP ${res.statusCode} ${body.slice(0, 200)}`);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** `count` small GETs, `concurrency` at a time; returns each latency (ms) and the rate (requests/s). */
export async function smallGets(t: Target, count: number, concurrency: number): Promise<{ latencies: number[]; perSecond: number }> {
  const latencies: number[] = [];
  let next = 0;
  const start = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      latencies.push(await smallGet(t));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { latencies, perSecond: count / seconds };
}

/**
 * Small GETs one at a time until `maxCount` are done or `maxMs` has passed,
 * whichever comes first (a request under way when time is up is finished and
 * counted); returns each latency (ms) and the rate (requests/s).
 */
export async function smallGetsFor(t: Target, maxCount: number, maxMs: number): Promise<{ latencies: number[]; perSecond: number }> {
  const latencies: number[] = [];
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(maxMs * 1e6));
  while (latencies.length < maxCount && process.hrtime.bigint() < deadline) latencies.push(await smallGet(t));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { latencies, perSecond: latencies.length / seconds };
}
