// The runner's side of the plain-HTTP kinds, through the gateway's
// /k8s/clusters/C endpoint with undici: a GET with Content-Length (plain), a
// chunked GET, an upload whose digest the upstream sends back, a WATCH and a
// followed log. The body is hashed as it arrives; HTTP framing (length or
// last chunk) is what makes an end clean, so undici's "premature close" and
// friends are errors, and a clean end with the wrong bytes is a truncation.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { blobChunks } from '@pipeops/tunnel-testkit';
import { Agent, request } from 'undici';
import { CHAOS_CLUSTER } from './rig.ts';
import type { Expected, StreamResult, StreamSpec } from './stream-kinds.ts';

/** Where and how the runner reaches the gateway. */
export interface RunnerTarget {
  gatewayUrl: string;
  gatewayCa: string;
  runnerToken: string;
}

function pathOf(spec: StreamSpec): string {
  const seed = encodeURIComponent(spec.seed);
  switch (spec.kind) {
    case 'plain':
      return `/chaos/blob?bytes=${spec.count}&seed=${seed}`;
    case 'chunked':
      return `/chaos/chunked?bytes=${spec.count}&seed=${seed}`;
    case 'upload':
      return '/chaos/sink';
    case 'watch':
      return `/api/v1/namespaces/default/pods?watch=true&events=${spec.count}&seed=${seed}&intervalMs=${spec.intervalMs}`;
    case 'logs':
      return `/api/v1/namespaces/default/pods/web-0/log?follow=true&lines=${spec.count}&seed=${seed}&intervalMs=${spec.intervalMs}`;
    default:
      throw new Error(`not an HTTP kind: ${spec.kind}`);
  }
}

/** The upload body: the blob in pieces, counted as undici pulls them. */
async function* uploadBody(spec: StreamSpec, onProgress: (bytes: number) => void): AsyncGenerator<Buffer> {
  let sent = 0;
  for (const chunk of blobChunks(spec.count, spec.seed)) {
    for (let at = 0; at < chunk.length; at += 16_384) {
      const piece = chunk.subarray(at, at + 16_384);
      sent += piece.length;
      onProgress(sent);
      yield piece;
    }
  }
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const parts = [e.code, e.message, e.cause?.code ?? e.cause?.message].filter((s) => s !== undefined && s !== '');
  return parts.join(': ');
}

/** Runs one HTTP-kind stream; `onProgress` gets the bytes received (sent, for an upload) so far. Never throws. */
export async function runHttpStream(
  target: RunnerTarget,
  spec: StreamSpec,
  expected: Expected,
  onProgress: (bytes: number) => void,
  signal: AbortSignal,
): Promise<StreamResult> {
  const dispatcher = new Agent({ connect: { ca: target.gatewayCa }, allowH2: false, keepAliveTimeout: 1_000 });
  let bytes = 0;
  try {
    const upload = spec.kind === 'upload';
    const res = await request(`${target.gatewayUrl}/k8s/clusters/${CHAOS_CLUSTER}${pathOf(spec)}`, {
      method: upload ? 'PUT' : 'GET',
      headers: { authorization: `Bearer ${target.runnerToken}`, ...(upload ? { 'content-type': 'application/octet-stream' } : {}) },
      ...(upload ? { body: Readable.from(uploadBody(spec, onProgress), { objectMode: false }) } : {}),
      dispatcher,
      signal,
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => '');
      return { ending: 'error', bytes, expectedBytes: expected.bytes, at: Date.now(), detail: `HTTP ${res.statusCode} ${text.slice(0, 200)}` };
    }
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (upload) chunks.push(chunk);
      else {
        hash.update(chunk);
        onProgress(bytes);
      }
    }
    const at = Date.now();
    if (upload) {
      const got = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { bytes: number; sha256: string };
      if (got.bytes === expected.bytes && got.sha256 === expected.sha256) return { ending: 'complete', bytes: got.bytes, expectedBytes: expected.bytes, at };
      return {
        ending: 'truncated',
        bytes: got.bytes,
        expectedBytes: expected.bytes,
        at,
        detail: `the upstream read ${got.bytes} bytes (sha256 ${got.sha256.slice(0, 12)}…)`,
      };
    }
    const sha256 = hash.digest('hex');
    if (bytes === expected.bytes && sha256 === expected.sha256) return { ending: 'complete', bytes, expectedBytes: expected.bytes, at };
    return {
      ending: 'truncated',
      bytes,
      expectedBytes: expected.bytes,
      at,
      detail: `clean end after ${bytes} of ${expected.bytes} bytes (sha256 ${sha256.slice(0, 12)}…)`,
    };
  } catch (err) {
    return { ending: 'error', bytes, expectedBytes: expected.bytes, at: Date.now(), detail: describe(err) };
  } finally {
    void dispatcher.destroy().catch(() => {});
  }
}
