import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { answerAndClose, kubeStatusResponse, sendKubeStatus } from '@pipeops/tunnel-protocol';

/** Writes a `Status` response (`Content-Type: application/json`); a response already started is destroyed. */
export function sendStatus(res: ServerResponse, code: number, message: string, headers: Record<string, string> = {}): void {
  sendKubeStatus(res, code, message, headers);
}

/**
 * Answers an upgrade (or CONNECT) on the raw socket with a complete `Status`
 * response, then closes it. With `drain`, the socket is not destroyed after
 * the response: what the peer still sends is read and dropped, and the
 * socket closes when the peer ends too. That is for a mux stream, where a
 * reset right behind the response can reach the runner before it has read
 * the response, and the runner's stream would fail without it.
 */
export function refuseWithStatus(socket: Duplex, code: number, message: string, headers: Record<string, string> = {}, o: { drain?: boolean } = {}): void {
  answerAndClose(socket, kubeStatusResponse(code, message, headers), o);
}
