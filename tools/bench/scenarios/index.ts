import type { Scenario } from './types.ts';
import { DEFAULT_WINDOW_BYTES, LARGE_WINDOW_BYTES, muxThroughput } from './mux-throughput.ts';

/** Every scenario `pnpm bench` runs, in order. Add new ones here. */
export const scenarios: Scenario[] = [
  muxThroughput({ name: 'mux-ws-1-stream', transport: 'ws', streams: 1, windowBytes: LARGE_WINDOW_BYTES }),
  muxThroughput({ name: 'mux-ws-16-streams', transport: 'ws', streams: 16, windowBytes: LARGE_WINDOW_BYTES }),
  muxThroughput({ name: 'mux-ws-1-stream-default-window', transport: 'ws', streams: 1, windowBytes: DEFAULT_WINDOW_BYTES }),
  muxThroughput({ name: 'mux-tcp-1-stream', transport: 'tcp', streams: 1, windowBytes: LARGE_WINDOW_BYTES }),
];
