import type { Scenario } from './types.ts';
import { DEFAULT_WINDOW_BYTES, LARGE_WINDOW_BYTES, muxThroughput } from './mux-throughput.ts';
import { response1GiB, responses16x256MiB, upload256MiB } from './http-throughput.ts';
import { smallGetLatency, smallGetRate } from './small-get.ts';
import { watches10k } from './watches.ts';
import { pausedReader } from './paused-reader.ts';
import { burstRss } from './burst-rss.ts';
import { reconnect } from './reconnect.ts';
import { fleetScale } from './fleet-scale.ts';
import { idleAgent, idleAgentAfterTraffic, idleAgentScenario, imageAllocator } from './idle-agent.ts';
import { highLatency } from './high-latency.ts';
import { greedyCappedVsPolite, greedyVsPolite } from './greedy-vs-polite.ts';

/** The container image's allocator, read once from the Dockerfile (undefined without libjemalloc2 here). */
const IMAGE_ALLOCATOR = imageAllocator();

/** Every scenario `pnpm bench` runs, in order. Add new ones here. */
export const scenarios: Scenario[] = [
  response1GiB('client'),
  response1GiB('endpoint'),
  upload256MiB('client'),
  upload256MiB('endpoint'),
  responses16x256MiB('client'),
  responses16x256MiB('endpoint'),
  smallGetLatency('client'),
  smallGetLatency('endpoint'),
  smallGetRate('client'),
  smallGetRate('endpoint'),
  // Not the tunnel: the floor of a two-hop design in Node, next to the same direct and chisel figures.
  response1GiB('node-floor'),
  upload256MiB('node-floor'),
  responses16x256MiB('node-floor'),
  smallGetLatency('node-floor'),
  smallGetRate('node-floor'),
  watches10k,
  pausedReader('client'),
  pausedReader('endpoint'),
  burstRss,
  reconnect,
  fleetScale,
  idleAgent,
  // The same on the container image's allocator, where this machine has it (Debian's libjemalloc2).
  ...(IMAGE_ALLOCATOR === undefined ? [] : [idleAgentScenario(IMAGE_ALLOCATOR)]),
  idleAgentAfterTraffic,
  ...(IMAGE_ALLOCATOR === undefined ? [] : [idleAgentScenario(IMAGE_ALLOCATOR, true)]),
  highLatency,
  greedyVsPolite,
  greedyCappedVsPolite,
  muxThroughput({ name: 'mux-ws-1-stream', transport: 'ws', streams: 1, windowBytes: LARGE_WINDOW_BYTES }),
  muxThroughput({ name: 'mux-ws-16-streams', transport: 'ws', streams: 16, windowBytes: LARGE_WINDOW_BYTES }),
  muxThroughput({ name: 'mux-ws-1-stream-default-window', transport: 'ws', streams: 1, windowBytes: DEFAULT_WINDOW_BYTES }),
  muxThroughput({ name: 'mux-tcp-1-stream', transport: 'tcp', streams: 1, windowBytes: LARGE_WINDOW_BYTES }),
];
