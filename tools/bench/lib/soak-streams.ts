// The streams the soak runs, one function per kind, each against a Target
// (the gateway's /k8s/clusters endpoint or @pipeops/tunnel-client) and the
// soak upstream (../soak-upstream.ts, the testkit's fake API server). Each
// either completes and checks what it got (bytes hashed, echoes compared), or,
// when asked to abort, goes away mid-stream as a runner does (the body
// destroyed after its first bytes, an upload cancelled half-way, a WebSocket
// terminated). It throws only on something a runner should never see.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import WebSocket from 'ws';
import { blobChunks, blobSha256 } from '@pipeops/tunnel-testkit';
import type { Target } from './full-path.ts';

/** Where a WebSocket (exec, port-forward) goes: wss origin + prefix, headers, the CA it trusts. */
export interface WsTarget {
  origin: string;
  prefix: string;
  headers: Record<string, string>;
  ca: Buffer;
}

export interface SoakTargets {
  endpoint: Target;
  client: Target;
  ws: WsTarget;
}

/** One stream: `abort` asks for a runner-side abort mid-stream; `r` in [0, 1) picks variants. */
export type StreamRun = (t: SoakTargets, abort: boolean, r: number) => Promise<void>;

export interface StreamKind {
  name: string;
  /** Relative share of the mix. */
  weight: number;
  /** Share of these streams aborted by the runner mid-stream (0 … 1). */
  abortShare: number;
  run: StreamRun;
}

const POD = '/api/v1/namespaces/default/pods/web-0';
const BLOB_SEED = 'soak';
const digests = new Map<number, string>();
const digestOf = (bytes: number): string => {
  let d = digests.get(bytes);
  if (d === undefined) {
    d = blobSha256(bytes, BLOB_SEED);
    digests.set(bytes, d);
  }
  return d;
};

/** Most HTTP streams go through the gateway endpoint; one in four through tunnel-client. */
const viaClient = (r: number): boolean => r < 0.25;
const via = (t: SoakTargets, r: number): Target => (viaClient(r) ? t.client : t.endpoint);

let streamsTagged = 0;
/** `t` with `x-pipeops-request-id: id` on every HTTP request: the gateway and the agent name their records of it so. */
const taggedWith = (t: SoakTargets, id: string): SoakTargets => {
  const tag = (target: Target): Target => ({ ...target, headers: { ...target.headers, 'x-pipeops-request-id': id } });
  return { ...t, endpoint: tag(t.endpoint), client: tag(t.client) };
};

/** Request ids the soak gave its streams (`soak-N`), as they appear in a failure's message. */
export const SOAK_REQUEST_ID = /\bsoak-\d+\b/g;

/**
 * An HTTP kind's `run` with a request id of its own, whose failures say
 * which way the stream went (as {@link via} chose), when, and under which
 * request id (to find the relays' records of it).
 */
function saysWhichWay(run: StreamRun): StreamRun {
  return async (t, abort, r) => {
    const id = `soak-${++streamsTagged}`;
    try {
      await run(taggedWith(t, id), abort, r);
    } catch (err) {
      const way = viaClient(r) ? 'tunnel-client' : 'gateway endpoint';
      throw new Error(`${(err as Error).message} (${way}, ${id}, ${new Date().toISOString()})`, { cause: err });
    }
  };
}
const url = (t: Target, path: string): string => `${t.origin}${t.prefix}${path}`;

async function expectStatus(res: Awaited<ReturnType<typeof request>>, status: number, what: string): Promise<void> {
  if (res.statusCode !== status) throw new Error(`${what}: HTTP ${res.statusCode} ${(await res.body.text()).slice(0, 200)}`);
}

/** GET a small object (~1 KiB JSON) or the pod list. */
const getObject: StreamRun = async (t, _abort, r) => {
  const target = via(t, r);
  const res = await request(url(target, r < 0.6 ? POD : '/api/v1/namespaces/default/pods'), { dispatcher: target.dispatcher, headers: target.headers });
  await expectStatus(res, 200, 'GET object');
  const body = (await res.body.json()) as { kind?: string };
  if (body.kind !== 'Pod' && body.kind !== 'PodList') throw new Error(`GET object: kind ${String(body.kind)}`);
};

/** GET a blob of 16 KiB, 256 KiB or 1 MiB (content-length), hash-checked; aborted after its first chunk. */
const getBlob: StreamRun = async (t, abort, r) => {
  const target = via(t, r);
  const bytes = [16 * 1024, 256 * 1024, 1024 * 1024][Math.floor(((r * 4) % 1) * 3)] ?? 16 * 1024;
  const res = await request(url(target, `/blob?bytes=${bytes}&seed=${BLOB_SEED}`), { dispatcher: target.dispatcher, headers: target.headers });
  await expectStatus(res, 200, 'GET blob');
  if (abort) {
    for await (const _ of res.body) break; // first chunk, then the runner goes away (the iterator destroys the body)
    return;
  }
  const hash = createHash('sha256');
  let got = 0;
  for await (const chunk of res.body) {
    hash.update(chunk as Buffer);
    got += (chunk as Buffer).length;
  }
  if (got !== bytes || hash.digest('hex') !== digestOf(bytes)) throw new Error(`GET blob: ${got} of ${bytes} bytes or digest mismatch`);
};

/** GET a chunked response with a trailer (Transfer-Encoding: chunked end to end). */
const getChunked: StreamRun = async (t, _abort, r) => {
  const target = via(t, r);
  const res = await request(url(target, '/trailers'), { dispatcher: target.dispatcher, headers: target.headers });
  await expectStatus(res, 200, 'GET chunked');
  const text = await res.body.text();
  if (!text.startsWith('first')) throw new Error(`GET chunked: body ${text.slice(0, 50)}`);
};

/** POST 64 KiB or 512 KiB to the sink, checked by its digest; aborted after the first chunk was sent. */
const upload: StreamRun = async (t, abort, r) => {
  const target = via(t, r);
  const bytes = r < 0.5 ? 64 * 1024 : 512 * 1024;
  const controller = new AbortController();
  let sent = 0;
  const body = Readable.from(
    (function* () {
      for (const chunk of blobChunks(bytes, BLOB_SEED)) {
        if (abort && sent > 0) {
          controller.abort();
          return;
        }
        sent += chunk.length;
        yield chunk;
      }
    })(),
    { objectMode: false },
  );
  try {
    const res = await request(url(target, '/sink'), {
      method: 'POST',
      dispatcher: target.dispatcher,
      body,
      signal: controller.signal,
      headers: { ...target.headers, 'content-type': 'application/octet-stream', 'content-length': String(bytes) },
    });
    await expectStatus(res, 200, 'upload');
    const answer = (await res.body.json()) as { bytes: number; sha256: string };
    if (answer.bytes !== bytes || answer.sha256 !== digestOf(bytes)) throw new Error(`upload: sink got ${answer.bytes} of ${bytes} bytes or digest mismatch`);
  } catch (err) {
    if (abort && controller.signal.aborted) return;
    throw err;
  }
};

/**
 * A WATCH (chunked, open-ended): read the first event (up to its newline:
 * chunks may end anywhere in it), then the runner leaves; or, when the
 * upstream ends every WATCH first (every 3 s), the response completes at the
 * server's end.
 */
const watch: StreamRun = async (t, _abort, r) => {
  const target = via(t, r);
  const res = await request(url(target, '/api/v1/namespaces/default/pods?watch=1'), { dispatcher: target.dispatcher, headers: target.headers, bodyTimeout: 0 });
  await expectStatus(res, 200, 'WATCH');
  let seen = '';
  for await (const chunk of res.body) {
    seen += String(chunk);
    const end = seen.indexOf('\n');
    if (end === -1) continue;
    const event = JSON.parse(seen.slice(0, end)) as { type?: unknown };
    if (typeof event.type !== 'string') throw new Error(`WATCH: event ${seen.slice(0, 80)}`);
    break; // the iterator destroys the body: the runner stops watching
  }
  if (seen !== '' && !seen.includes('\n')) throw new Error(`WATCH: ended inside an event: ${seen.slice(0, 80)}`);
};

/** `logs -f`: read the first line, then the runner leaves (or the upstream ended it first). */
const followLogs: StreamRun = async (t, _abort, r) => {
  const target = via(t, r);
  const res = await request(url(target, `${POD}/log?follow=true`), { dispatcher: target.dispatcher, headers: target.headers, bodyTimeout: 0 });
  await expectStatus(res, 200, 'logs -f');
  for await (const _ of res.body) break;
};

/** exec (v5.channel.k8s.io) or port-forward (portforward.k8s.io) over WebSocket: one echo, then a clean close, or terminated. */
function webSocketRun(subresource: 'exec' | 'portforward', protocol: string): StreamRun {
  return async (t, abort) => {
    const w = t.ws;
    const ws = new WebSocket(`${w.origin}${w.prefix}${POD}/${subresource}?command=sh&stdin=true&stdout=true`, protocol, {
      headers: w.headers,
      ca: w.ca,
      perMessageDeflate: false,
    });
    const closed = new Promise<number>((resolve, reject) => {
      ws.once('close', (code) => resolve(code));
      ws.once('error', reject);
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`${subresource}: upgrade refused with HTTP ${res.statusCode}`)));
    });
    const payload = Buffer.concat([Buffer.from([0]), randomBytes(32)]);
    const echoed = new Promise<Buffer>((resolve) => ws.once('message', (data) => resolve(data as Buffer)));
    ws.send(payload);
    if (!(await echoed).equals(payload)) throw new Error(`${subresource}: echo differs`);
    if (abort) {
      ws.terminate();
      await closed.catch(() => undefined);
      return;
    }
    ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('close')]));
    const code = await closed;
    if (code !== 1000) throw new Error(`${subresource}: closed with ${code}`);
  };
}

/** The mix: weights are relative shares of the streams. */
export const SOAK_KINDS: readonly StreamKind[] = [
  { name: 'get', weight: 30, abortShare: 0, run: saysWhichWay(getObject) },
  { name: 'blob', weight: 20, abortShare: 0.2, run: saysWhichWay(getBlob) },
  { name: 'chunked', weight: 10, abortShare: 0, run: saysWhichWay(getChunked) },
  { name: 'upload', weight: 10, abortShare: 0.2, run: saysWhichWay(upload) },
  { name: 'watch', weight: 10, abortShare: 0, run: saysWhichWay(watch) },
  { name: 'logs-f', weight: 6, abortShare: 0, run: saysWhichWay(followLogs) },
  { name: 'exec', weight: 7, abortShare: 0.3, run: webSocketRun('exec', 'v5.channel.k8s.io') },
  { name: 'port-forward', weight: 7, abortShare: 0.3, run: webSocketRun('portforward', 'portforward.k8s.io') },
];
