import type { SessionOptions } from '@pipeops/tunnel-mux';

/**
 * The `tunnel` section, shared by the agent's and the gateway's
 * configuration: how the yamux session over the WebSocket is sized. Both
 * ends apply their own values to what they receive; the sender obeys the
 * receiver's window, so the two need not match.
 */
export const tunnelSchema = {
  stream_window: {
    doc: 'Largest receive window of one stream (bytes, or 256KiB, 16MiB). Windows start at 256 KiB and grow toward this while a stream is read quickly; a paused reader never holds more than its window. Bigger sustains more throughput per stream on high-latency links.',
    format: 'byte-size',
    default: '16MiB',
  },
  max_streams: { doc: 'Open streams per tunnel session (every WATCH, log follow, exec and request in flight holds one).', format: 'nat', default: 65_536 },
  window_budget: {
    doc: "The most the windows of one session's streams may grow together (bytes, or 64MiB; 0 = no cap). A session then holds at most open streams × 256 KiB + this unread, whatever stream_window is: the term of the memory formula (docs/reliability.md) that bursts of many fast streams would otherwise multiply. One stream alone still grows to stream_window.",
    format: 'byte-size',
    default: '64MiB',
  },
  keepalive_interval: {
    doc: 'Time between keepalive pings on the session (0 = none). With keepalive_timeout, how long a link that silently stopped carrying bytes (a NAT or load balancer that forgot the flow) goes unnoticed: at most the sum.',
    format: 'duration-ms',
    default: '30s',
  },
  keepalive_timeout: {
    doc: 'A keepalive ping not answered within this ends the session, which is then dialled again (the agent) or refused (the gateway).',
    format: 'duration-ms',
    default: '10s',
  },
};

/** The validated `tunnel` section. */
export interface TunnelConfig {
  stream_window: number;
  max_streams: number;
  window_budget: number;
  keepalive_interval: number;
  keepalive_timeout: number;
}

/** Checks the schema cannot express; returns problems as `key: why` lines. */
export function tunnelConfigProblems(t: TunnelConfig): string[] {
  const problems: string[] = [];
  if (t.stream_window < 256 * 1024) problems.push('tunnel.stream_window: must be at least 256KiB (the yamux initial window)');
  if (t.stream_window > 2 ** 32 - 1) problems.push('tunnel.stream_window: must be below 4GiB');
  if (t.max_streams < 1) problems.push('tunnel.max_streams: must be at least 1');
  if (t.keepalive_interval !== 0 && t.keepalive_timeout < 1) problems.push('tunnel.keepalive_timeout: must be above 0 while keepalive_interval is');
  return problems;
}

/** The mux session options of the `tunnel` section. */
export function toMuxOptions(t: TunnelConfig): Partial<SessionOptions> {
  return {
    maxStreamWindowBytes: t.stream_window,
    autoTuneWindow: true,
    maxConcurrentStreams: t.max_streams,
    sessionWindowGrowthBytes: t.window_budget,
    keepAliveIntervalMs: t.keepalive_interval,
    keepAliveTimeoutMs: Math.max(1, t.keepalive_timeout),
  };
}
