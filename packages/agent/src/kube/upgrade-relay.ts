import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { auditTarget, requestInfo, type AuditDenyRule } from '@pipeops/tunnel-protocol';
import { admit } from './admission.ts';
import type { Exchange, ExchangeResult, KubeProxyOptions } from './http-handler.ts';
import { recordExchange, upstreamTarget } from './http-handler.ts';
import { downstreamResponseHeaders, targetProblem } from './headers.ts';
import { upstreamErrorReason } from './kube-metrics.ts';
import { sendRawStatus } from './status.ts';
import { kubeVerb } from './verb.ts';

/** Upgrade protocols the API server speaks for exec, attach and port-forward. */
const UPGRADES = new Map([['websocket', 'websocket'], ['spdy/3.1', 'SPDY/3.1']]);

function headBytes(statusLine: string, raw: readonly string[]): Buffer {
  let s = `${statusLine}\r\n`;
  for (let i = 0; i + 1 < raw.length; i += 2) s += `${raw[i] ?? ''}: ${raw[i + 1] ?? ''}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}

/**
 * Serves an upgrade request (exec, attach, port-forward over WebSocket or
 * SPDY/3.1): undici upgrades to the API server with the client's headers and
 * the agent's credentials; a 101 is written back with the API server's
 * headers and then raw bytes flow both ways, each direction's FIN relayed as
 * a half-close. Any other answer is relayed as a plain response (the body
 * delimited by its length or by the end of the stream).
 */
export async function relayUpgrade(req: IncomingMessage, stream: Duplex, head: Buffer, ex: Exchange, o: KubeProxyOptions): Promise<void> {
  const method = req.method ?? 'GET';
  const path = req.url ?? '';
  const info = requestInfo(method, path);
  const result: ExchangeResult = { method, path, verb: kubeVerb(method, path, true, info), status: undefined, bytesIn: 0, bytesOut: 0, upgraded: false, target: auditTarget(info) };
  const refuse = (code: number, message: string, error?: unknown, rule?: AuditDenyRule): void => {
    sendRawStatus(stream, code, message, rule);
    result.status = code;
    if (error !== undefined) result.error = error;
    if (rule !== undefined) result.rule = rule;
    recordExchange(ex, result, o);
  };
  const problem = targetProblem(path, req.rawHeaders);
  if (problem !== undefined) return refuse(400, problem, undefined, 'protocol');
  const protocol = UPGRADES.get((req.headers.upgrade ?? '').trim().toLowerCase());
  if (protocol === undefined) return refuse(400, 'only websocket and SPDY/3.1 upgrades are supported', undefined, 'protocol');
  const admitted = admit(info, req.rawHeaders, ex.preamble, true, o.admission);
  if ('refusal' in admitted) return refuse(admitted.refusal.code, admitted.refusal.message, undefined, admitted.refusal.rule);
  const target = await upstreamTarget(req.rawHeaders, admitted.headers, o);
  if ('refusal' in target) return refuse(target.refusal.code, target.refusal.message, target.refusal.error);
  const { dispatcher, headers, credentials } = target;
  if (ex.gone) {
    recordExchange(ex, result, o);
    return;
  }
  await new Promise<void>((settle) => {
    let headSent = false;
    dispatcher.dispatch({ path, method, headers, body: null, upgrade: protocol }, {
      onRequestStart(controller) {
        ex.abort = (reason) => controller.abort(reason);
        if (ex.gone) controller.abort(new Error('the stream closed'));
      },
      onRequestUpgrade(controller, statusCode, _headers, socket) {
        delete ex.abort;
        result.status = statusCode;
        result.upgraded = true;
        ex.upgraded = true;
        const raw = downstreamResponseHeaders((controller.rawHeaders ?? []) as Buffer[], true);
        stream.write(headBytes(`HTTP/1.1 ${String(statusCode)} Switching Protocols`, raw));
        pipeBoth(stream, socket, head, ex, result, o);
        settle();
      },
      onResponseStart(controller, statusCode, _headers, statusText) {
        result.status = statusCode;
        if (statusCode === 401) credentials.invalidate();
        const raw = downstreamResponseHeaders((controller.rawHeaders ?? []) as Buffer[]);
        raw.push('connection', 'close');
        stream.write(headBytes(`HTTP/1.1 ${String(statusCode)} ${statusText ?? ''}`.trimEnd(), raw));
        headSent = true;
      },
      onResponseData(controller, chunk) {
        result.bytesOut += chunk.length;
        if (!stream.write(chunk)) {
          controller.pause();
          stream.once('drain', () => controller.resume());
        }
      },
      onResponseEnd() {
        delete ex.abort;
        stream.end();
        recordExchange(ex, result, o);
        settle();
      },
      onResponseError(_controller, err) {
        delete ex.abort;
        if (!ex.gone) {
          o.metrics.upstreamError(upstreamErrorReason(err));
          if (!headSent) {
            result.status = 502;
            sendRawStatus(stream, 502, `API server upgrade failed: ${err.message}`);
          } else {
            stream.destroy(err);
          }
          result.error = err;
        }
        recordExchange(ex, result, o);
        settle();
      },
    });
  });
}

/** Raw bytes both ways after a 101; FIN → half-close of that direction; an error or RST on either side resets the other. */
function pipeBoth(stream: Duplex, socket: Duplex, head: Buffer, ex: Exchange, result: ExchangeResult, o: KubeProxyOptions): void {
  o.metrics.upgradesActive.inc();
  // Half-close: a FIN from the API server must not end our direction towards it.
  (socket as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
  socket.on('error', () => {});
  if (head.length > 0) {
    result.bytesIn += head.length;
    socket.write(head);
  }
  stream.on('data', (c: Buffer) => {
    result.bytesIn += c.length;
  });
  socket.on('data', (c: Buffer) => {
    result.bytesOut += c.length;
  });
  stream.pipe(socket);
  socket.pipe(stream);
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    o.metrics.upgradesActive.dec();
    recordExchange(ex, result, o);
  };
  stream.once('close', () => {
    if (stream.errored !== null && stream.errored !== undefined) socket.destroy();
    else if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
    finish();
  });
  socket.once('close', () => {
    const err = (socket as Duplex & { errored?: Error | null }).errored;
    if (err !== null && err !== undefined) {
      o.metrics.upstreamError(upstreamErrorReason(err));
      stream.destroy(err);
    } else if (!stream.writableEnded) {
      stream.end();
    }
  });
}
