import type { ClientRequestArgs } from 'node:http';
import type { Duplex } from 'node:stream';
import { asSocket } from './stream-socket.ts';
import { nodeHttp } from '@pipeops/tunnel-protocol';

/**
 * A Node `http.Agent` whose connections are tunnel streams: used for the
 * WebSockets `@kubernetes/client-node` opens with `ws` (Exec, Attach,
 * PortForward). No keep-alive: one stream per request.
 */
export class TunnelHttpAgent extends nodeHttp.Agent {
  readonly #open: () => Promise<Duplex>;

  constructor(openStream: () => Promise<Duplex>) {
    super({ keepAlive: false });
    this.#open = openStream;
  }

  override createConnection(_options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    this.#open().then(
      (stream) => callback?.(null, asSocket(stream)),
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}
