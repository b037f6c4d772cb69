// The runner's side of the upgraded kinds (exec and port-forward), through
// the gateway's /k8s/clusters/C endpoint, over either transport kubectl
// speaks:
//
// - WebSocket (v5.channel.k8s.io for exec, portforward.k8s.io for
//   port-forward): messages go out (at most WINDOW_BYTES unanswered), the
//   upstream echoes each, and the last one, "<0>close", is answered with a
//   1000 close — as an API server closes an exec whose command ended. Clean
//   end: the server's 1000 close; anything else (1006, an error) is an error.
// - SPDY/3.1 on a raw TLS socket: the upgrade head, then raw bytes echoed
//   back; after the runner's FIN the upstream writes "bye\n" and ends. The
//   test double carries no SPDY framing, so "bye\n" stands for the SPDY
//   stream's FIN flag: an end without it is an error (SPDY would see a
//   connection lost mid-stream), an end after it with bytes missing or wrong
//   is a truncation.
import { createHash } from 'node:crypto';
import tls from 'node:tls';
import { blobChunks } from '@pipeops/tunnel-testkit';
import WebSocket from 'ws';
import type { RunnerTarget } from './http-streams.ts';
import { CHAOS_CLUSTER } from './rig.ts';
import { execMessages, type Expected, type StreamResult, type StreamSpec } from './stream-kinds.ts';

/** Stdin bytes an exec may have sent and not yet seen echoed. */
const WINDOW_BYTES = 256 * 1024;
const BYE = 'bye\n';
const POD = '/api/v1/namespaces/default/pods/web-0';

/** The upgrade's path (under the cluster prefix) and subprotocol of each kind. */
function upgradeOf(spec: StreamSpec): { path: string; wsProtocol: string; spdyProtocol: string } {
  if (spec.kind === 'portforward') return { path: `${POD}/portforward?ports=8080`, wsProtocol: 'portforward.k8s.io', spdyProtocol: 'portforward.k8s.io' };
  return { path: `${POD}/exec?command=cat&stdin=true&stdout=true`, wsProtocol: 'v5.channel.k8s.io', spdyProtocol: 'v4.channel.k8s.io' };
}

/** How an echo run ends, as its handlers see it (see {@link settleOnce}). */
interface EchoEnding {
  /** The first call wins: tears the connection down and resolves the run with `r`. */
  settle(r: Omit<StreamResult, 'bytes' | 'expectedBytes' | 'at'>): void;
  /** Whether the run has ended. */
  readonly settled: boolean;
}

/**
 * The one ending of an echo run: `close()` tears the connection down and
 * `resolve` gets the result with the echoed byte count `bytes()`; the
 * harness's abort (`signal`) ends it as an error.
 */
function settleOnce(signal: AbortSignal, expected: Expected, bytes: () => number, close: () => void, resolve: (r: StreamResult) => void): EchoEnding {
  let settled = false;
  const settle = (r: Omit<StreamResult, 'bytes' | 'expectedBytes' | 'at'>): void => {
    if (settled) return;
    settled = true;
    signal.removeEventListener('abort', onAbort);
    close();
    resolve({ ...r, bytes: bytes(), expectedBytes: expected.bytes, at: Date.now() });
  };
  const onAbort = (): void => settle({ ending: 'error', detail: 'aborted by the harness' });
  signal.addEventListener('abort', onAbort, { once: true });
  return {
    settle,
    get settled() {
      return settled;
    },
  };
}

/** Runs an exec or port-forward over WebSocket; `onProgress` gets the echoed bytes so far. Never throws. */
export function runWebSocketEcho(
  target: RunnerTarget,
  spec: StreamSpec,
  expected: Expected,
  onProgress: (bytes: number) => void,
  signal: AbortSignal,
): Promise<StreamResult> {
  return new Promise((resolve) => {
    const { path, wsProtocol } = upgradeOf(spec);
    const ws = new WebSocket(`${target.gatewayUrl.replace(/^https/, 'wss')}/k8s/clusters/${CHAOS_CLUSTER}${path}`, [wsProtocol], {
      ca: target.gatewayCa,
      headers: { authorization: `Bearer ${target.runnerToken}` },
      perMessageDeflate: false,
    });
    const hash = createHash('sha256');
    const messages = execMessages(spec);
    let bytes = 0;
    let sent = 0;
    let finished = false;
    const { settle } = settleOnce(
      signal,
      expected,
      () => bytes,
      () => ws.terminate(),
      resolve,
    );
    const fill = (): void => {
      while (!finished && sent - bytes < WINDOW_BYTES) {
        const m = messages.next();
        if (m.done) {
          finished = true;
          ws.send(Buffer.from('\x00close', 'latin1'));
          return;
        }
        sent += m.value.length;
        ws.send(m.value);
      }
    };
    ws.on('open', fill);
    ws.on('message', (data: Buffer) => {
      bytes += data.length;
      hash.update(data);
      onProgress(bytes);
      fill();
    });
    ws.on('unexpected-response', (_req, res) => settle({ ending: 'error', detail: `HTTP ${res.statusCode} on the upgrade` }));
    ws.on('error', (err: Error) => settle({ ending: 'error', detail: err.message }));
    ws.on('close', (code: number, reason: Buffer) => {
      if (code !== 1000) return settle({ ending: 'error', detail: `WebSocket closed ${code} ${reason.toString()}`.trim() });
      const sha256 = hash.digest('hex');
      if (bytes === expected.bytes && sha256 === expected.sha256) return settle({ ending: 'complete' });
      settle({ ending: 'truncated', detail: `1000 close after ${bytes} of ${expected.bytes} echoed bytes` });
    });
  });
}

/** Resolves when `socket` drains or closes, leaving no listener behind. */
function drainOrClose(socket: tls.TLSSocket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Runs an exec or port-forward over SPDY; `onProgress` gets the echoed bytes so far. Never throws. */
export function runSpdyEcho(
  target: RunnerTarget,
  spec: StreamSpec,
  expected: Expected,
  onProgress: (bytes: number) => void,
  signal: AbortSignal,
): Promise<StreamResult> {
  return new Promise((resolve) => {
    const { hostname, port } = new URL(target.gatewayUrl);
    const { path, spdyProtocol } = upgradeOf(spec);
    const socket = tls.connect({ host: hostname, port: Number(port), ca: target.gatewayCa, ALPNProtocols: ['http/1.1'] });
    const hash = createHash('sha256');
    let head: Buffer | undefined = Buffer.alloc(0);
    let bytes = 0;
    let tail = Buffer.alloc(0);
    const run = settleOnce(
      signal,
      expected,
      () => bytes,
      () => socket.destroy(),
      resolve,
    );
    const settle = run.settle;
    const body = async (): Promise<void> => {
      for (const chunk of blobChunks(spec.count, spec.seed)) {
        if (run.settled) return;
        if (!socket.write(chunk)) await drainOrClose(socket);
      }
      if (!run.settled) socket.end();
    };
    const onData = (data: Buffer): void => {
      // The last bytes may be "bye\n": hold back the last few until the end decides.
      const all = Buffer.concat([tail, data]);
      const keep = Math.min(all.length, BYE.length);
      const take = all.subarray(0, all.length - keep);
      tail = Buffer.from(all.subarray(all.length - keep));
      bytes += take.length;
      hash.update(take);
      onProgress(bytes);
    };
    socket.once('secureConnect', () => {
      socket.write(
        `POST /k8s/clusters/${CHAOS_CLUSTER}${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${target.runnerToken}\r\n` +
          `Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${spdyProtocol}\r\nContent-Length: 0\r\n\r\n`,
      );
    });
    socket.on('data', (data: Buffer) => {
      if (head === undefined) return onData(data);
      head = Buffer.concat([head, data]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const rest = head.subarray(end + 4);
      head = undefined;
      if (!/^HTTP\/1\.1 101 /.test(status)) return settle({ ending: 'error', detail: `upgrade refused: ${status}` });
      if (rest.length > 0) onData(rest);
      void body();
    });
    socket.on('error', (err: Error) => settle({ ending: 'error', detail: err.message }));
    socket.once('end', () => {
      if (head !== undefined) return settle({ ending: 'error', detail: 'connection ended before the upgrade answer' });
      if (tail.toString('latin1') !== BYE) return settle({ ending: 'error', detail: `ended without the bye after ${bytes + tail.length} bytes` });
      const sha256 = hash.digest('hex');
      if (bytes === expected.bytes && sha256 === expected.sha256) return settle({ ending: 'complete' });
      settle({ ending: 'truncated', detail: `bye after ${bytes} of ${expected.bytes} echoed bytes` });
    });
    socket.once('close', () => settle({ ending: 'error', detail: `connection closed after ${bytes} echoed bytes` }));
  });
}
