// `pnpm exec node tools/bench/burst-memory.ts [--bursts B] [--streams N] [--bytes N] [--via endpoint|client]
//    [--settle-ms MS] [--pause-ms MS] [--env K=V]… [--node-option OPT]… [--stream-window SIZE] [--window-budget SIZE]`
//
// Issue 13's memory finding, taken apart: B bursts of N concurrent responses
// of `bytes` each through the full path (lib/soak-rig.ts: real gateway and
// agent processes, the fake API server), the gateway's and the agent's RSS
// sampled every 50 ms, and where the memory is at the peak (V8 heap,
// external, arrayBuffers from process.memoryUsage() over the inspector,
// without forcing a GC) and `settle-ms` after each burst (RSS as the kernel
// sees it, no GC forced: what a pod's memory limit sees). `--env`,
// `--node-option`, `--stream-window` and `--window-budget` (the agent's and
// the gateway's tunnel.stream_window and tunnel.window_budget) are the knobs
// the measurements compare.
import { parseArgs } from 'node:util';
import { request } from 'undici';
import type { Target } from './lib/full-path.ts';
import { fdCount, rssBytes } from './lib/proc-stats.ts';
import type { MemoryUsage } from './lib/inspector-client.ts';
import { SOAK_SIDES, startSoakRig, type SoakSide } from './lib/soak-rig.ts';
import { formatRows } from './lib/soak-verdict.ts';

const { values } = parseArgs({
  options: {
    bursts: { type: 'string', default: '3' },
    streams: { type: 'string', default: '200' },
    bytes: { type: 'string', default: String(1024 * 1024) },
    via: { type: 'string', default: 'endpoint' },
    'settle-ms': { type: 'string', default: '60000' },
    env: { type: 'string', multiple: true, default: [] },
    'node-option': { type: 'string', multiple: true, default: [] },
    'stream-window': { type: 'string' },
    'window-budget': { type: 'string' },
    'pause-ms': { type: 'string', default: '0' },
  },
});
const bursts = Number(values.bursts);
const streams = Number(values.streams);
const bytes = Number(values.bytes);
const settleMs = Number(values['settle-ms']);
const pauseMs = Number(values['pause-ms']);
const env = Object.fromEntries(values.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const tunnelSection = {
  ...(values['stream-window'] === undefined ? {} : { stream_window: values['stream-window'] }),
  ...(values['window-budget'] === undefined ? {} : { window_budget: values['window-budget'] }),
};
const tunnel = Object.keys(tunnelSection).length === 0 ? undefined : { tunnel: tunnelSection };
const MB = 1e6;

const rig = await startSoakRig({
  env,
  nodeOptions: values['node-option'],
  ...(tunnel ? { agentConfig: tunnel, gatewayConfig: tunnel } : {}),
});
try {
  const target = (): Target => (values.via === 'client' ? rig.targets.client : rig.targets.endpoint);
  const fetchBlob = async (afterHead?: () => Promise<void>): Promise<void> => {
    const t = target();
    const res = await request(`${t.origin}${t.prefix}/blob?bytes=${bytes}&seed=burst`, { dispatcher: t.dispatcher, headers: t.headers });
    if (res.statusCode !== 200) throw new Error(`blob: HTTP ${res.statusCode}`);
    await afterHead?.();
    let got = 0;
    for await (const chunk of res.body) got += (chunk as Buffer).length;
    if (got !== bytes) throw new Error(`blob: ${got} of ${bytes} bytes`);
  };
  // Warm-up: the paths' code compiled and their buffers at working size before the baseline.
  for (let i = 0; i < 4; i++) await Promise.all(Array.from({ length: 16 }, () => fetchBlob()));
  await new Promise((r) => setTimeout(r, 5_000));
  const base = Object.fromEntries(SOAK_SIDES.map((s) => [s, rssBytes(rig.pid(s))])) as Record<SoakSide, number>;
  const baseFds = Object.fromEntries(SOAK_SIDES.map((s) => [s, fdCount(rig.pid(s))])) as Record<SoakSide, number>;
  const rows = [
    [
      'burst',
      'process',
      'baseline RSS',
      'peak RSS',
      'peak − baseline',
      `after ${settleMs / 1000} s`,
      'after − baseline',
      'fds base/after',
      'heapTotal at peak',
      'heap at peak',
      'external at peak',
      'arrayBuffers at peak',
    ],
  ];
  for (let b = 1; b <= bursts; b++) {
    const peak = { ...base };
    const atPeak: Record<SoakSide, MemoryUsage | undefined> = { gateway: undefined, agent: undefined };
    const sampler = setInterval(() => {
      for (const s of SOAK_SIDES) peak[s] = Math.max(peak[s], rssBytes(rig.pid(s)));
    }, 50);
    // memoryUsage over the inspector, every 250 ms, the sample at the highest RSS kept.
    let probing = true;
    const probe = (async () => {
      const best = { gateway: 0, agent: 0 };
      while (probing) {
        for (const s of SOAK_SIDES) {
          const m = await rig.memoryUsage(s);
          if (m.rss > best[s]) {
            best[s] = m.rss;
            atPeak[s] = m;
          }
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const t0 = Date.now();
    // --pause-ms: every reader stops after the response head, for that long after the last head
    // arrived, so the path holds what its windows let it: the formula's worst case.
    let heads = 0;
    let allHeads: () => void = () => {};
    const resume = new Promise<void>((resolve) => {
      allHeads = resolve;
    }).then(() => new Promise<void>((r) => setTimeout(r, pauseMs)));
    const afterHead = async (): Promise<void> => {
      if (++heads === streams) allHeads();
      await resume;
    };
    await Promise.all(Array.from({ length: streams }, () => fetchBlob(pauseMs === 0 ? undefined : afterHead)));
    const ms = Date.now() - t0;
    probing = false;
    await probe;
    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, settleMs));
    for (const s of SOAK_SIDES) {
      const after = rssBytes(rig.pid(s));
      const m = atPeak[s];
      rows.push([
        `${b} (${ms} ms)`,
        s,
        (base[s] / MB).toFixed(0),
        (peak[s] / MB).toFixed(0),
        `+${((peak[s] - base[s]) / MB).toFixed(0)}`,
        (after / MB).toFixed(0),
        `${after >= base[s] ? '+' : ''}${((after - base[s]) / MB).toFixed(0)}`,
        `${baseFds[s]}/${fdCount(rig.pid(s))}`,
        m === undefined ? '' : (m.heapTotal / MB).toFixed(0),
        m === undefined ? '' : (m.heapUsed / MB).toFixed(0),
        m === undefined ? '' : (m.external / MB).toFixed(0),
        m === undefined ? '' : (m.arrayBuffers / MB).toFixed(0),
      ]);
    }
    process.stderr.write(`burst ${b} done\n`);
  }
  process.stdout.write(
    `${streams} × ${(bytes / 2 ** 20).toFixed(2)} MiB via ${values.via}; env ${JSON.stringify(env)}; node options ${JSON.stringify(values['node-option'])}; tunnel ${JSON.stringify(tunnelSection)}\n`,
  );
  process.stdout.write(`${formatRows(rows)}\n(MB = 10^6 bytes)\n`);
} finally {
  await rig.close();
}
