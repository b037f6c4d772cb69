import type { ClientOptions } from 'ws';

/** The ws client options every tunnel WebSocket (agent → gateway, runner → gateway) is dialed with. */
export type TunnelWebSocketClientOptions = Pick<ClientOptions, 'perMessageDeflate' | 'generateMask'>;

/**
 * ws client options that keep the per-byte cost of the tunnel transport low,
 * for a dial to `url`:
 *
 * - `perMessageDeflate: false`: the tunnel carries HTTP bodies, mostly
 *   compressed already; deflate would cost CPU per byte for little.
 * - `wss:` only, an all-zero masking key (`generateMask`). RFC 6455 §10.3
 *   masks client frames so that script-chosen bytes cannot look like HTTP to
 *   an intermediary that does not speak WebSocket (cache poisoning). Inside
 *   TLS no such intermediary sees the bytes, and the tunnel client runs no
 *   untrusted script. A zero key is a valid key, and ws then skips the XOR
 *   on both ends (sender: no copy of the payload; receiver: no unmask),
 *   which halves the CPU per byte of a TLS WebSocket. Plain `ws:` keeps
 *   random masks.
 */
export function tunnelWebSocketClientOptions(url: URL): TunnelWebSocketClientOptions {
  const options: TunnelWebSocketClientOptions = { perMessageDeflate: false };
  if (url.protocol === 'wss:') options.generateMask = zeroMask;
  return options;
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}
