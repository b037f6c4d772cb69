import type { BenchOptions, Rig, Scenario } from './types.ts';
import { muxOverTcp, muxOverWebSocket, muxSample, openWebSocket, rawWsSample } from '../lib/transfer.ts';

/** The window the mux scenarios use unless they say otherwise: 16 MiB. */
export const LARGE_WINDOW_BYTES = 16 * 1024 * 1024;
/** Yamux's spec initial window, the mux default: 256 KiB. */
export const DEFAULT_WINDOW_BYTES = 256 * 1024;
/** Bytes moved once per side, untimed, before the rounds (JIT, TCP windows). */
const WARMUP_BYTES = 16 * 1024 * 1024;

interface MuxThroughputSpec {
  name: string;
  transport: 'ws' | 'tcp';
  streams: number;
  windowBytes: number;
}

/**
 * Mux throughput: `streams` concurrent streams sharing `totalBytes`, over a
 * real ws WebSocket (or plain TCP) to the sink process, next to the raw ws
 * baseline (64 KiB binary messages) over the same kind of socket.
 */
export function muxThroughput(spec: MuxThroughputSpec): Scenario {
  const window = spec.windowBytes === DEFAULT_WINDOW_BYTES ? 'default 256 KiB window' : `${spec.windowBytes / 1024 / 1024} MiB window`;
  return {
    name: spec.name,
    metrics: [
      {
        name: spec.name,
        unit: 'MB/s',
        description: `mux alone over ${spec.transport === 'ws' ? 'ws' : 'plain TCP'}, ${spec.streams} stream${spec.streams > 1 ? 's' : ''}, ${window}; direct = raw ws 64 KiB messages`,
        target: null,
      },
    ],
    async setup(options: BenchOptions): Promise<Rig> {
      const sink = await options.sink();
      const mux = spec.transport === 'ws' ? await muxOverWebSocket(sink.wsPort, spec.windowBytes) : await muxOverTcp(sink.tcpPort, spec.windowBytes);
      const raw = await openWebSocket(sink.wsPort, '/raw');
      const warm = Math.min(WARMUP_BYTES, options.totalBytes);
      await muxSample(mux.session, spec.streams, warm);
      await rawWsSample(raw, warm);
      return {
        tunnel: async () => ({ [spec.name]: await muxSample(mux.session, spec.streams, options.totalBytes) }),
        direct: async () => ({ [spec.name]: await rawWsSample(raw, options.totalBytes) }),
        peer: null,
        async close() {
          raw.terminate();
          await mux.close();
        },
      };
    },
  };
}
