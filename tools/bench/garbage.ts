// `pnpm bench:garbage [--requests N] [--via client|endpoint] [--concurrency C] [--top K]`
//
// What the gateway and the agent allocate per small GET, and where: V8's
// sampling heap profiler in both relays (through their inspectors, opened by
// lib/inspector-preload.mjs), with the objects that minor and major GCs
// collected counted too, so garbage shows as well as what survives. After a
// warm-up (4,000 GETs at c=1, 12,000 at c=64) it samples N GETs and prints,
// per relay, KB per request, the share of each package, the largest sites,
// and the same bytes charged to the innermost frame of ours (Node's or a
// library's allocations under it included). Runs the relays from the
// sources, so sites carry names. Bytes allocated per request are what makes
// a relay's young-generation GC frequent (docs/benchmarks.md, "Still missed").
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startFullPath } from './lib/full-path.ts';
import { smallGets } from './lib/http-load.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '3000' },
    via: { type: 'string', default: 'client' },
    concurrency: { type: 'string', default: '1' },
    top: { type: 'string', default: '40' },
    port: { type: 'string', default: '9301' },
  },
});
const N = Number(values.requests);
const concurrency = Number(values.concurrency);
const top = Number(values.top);
if (values.via !== 'client' && values.via !== 'endpoint') throw new Error(`bench:garbage: --via is client or endpoint, not ${values.via}`);

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

async function inspect(port: number): Promise<{ call(method: string, params?: object): Promise<Record<string, unknown>>; close(): void }> {
  const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const ws = new WebSocket(list[0]!.webSocketDebuggerUrl, { perMessageDeflate: false, maxPayload: 2 ** 30 });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let seq = 0;
  const pending = new Map<number, (v: Record<string, unknown>) => void>();
  ws.on('message', (d) => {
    const m = JSON.parse(String(d)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
    if (m.id === undefined) return;
    if (m.error !== undefined) throw new Error(`inspector on ${port}: ${m.error.message}`);
    pending.get(m.id)?.(m.result ?? {});
    pending.delete(m.id);
  });
  return {
    call: (method, params = {}) =>
      new Promise((resolve) => {
        const id = ++seq;
        pending.set(id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** `packages/<name>`, a library, `node` or `native` for a frame's script. */
function owner(url: string): string {
  if (url.includes('/packages/')) return url.replace(/.*\/packages\/([^/]+)\/.*/, '$1');
  if (url.includes('node_modules')) return url.replace(/.*node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+).*/, '$1');
  if (url.startsWith('node:')) return 'node';
  return url === '' ? 'native' : url;
}

function report(name: string, head: ProfileNode): void {
  const bySite = new Map<string, number>();
  const byOwner = new Map<string, number>();
  const byOurs = new Map<string, number>();
  let total = 0;
  const walk = (n: ProfileNode, ours: string | undefined): void => {
    const { functionName, url, lineNumber } = n.callFrame;
    const site = `${functionName || '(anonymous)'} ${url.replace(/.*\/(packages|node_modules)\//, '')}:${lineNumber + 1}`;
    const mine = url.includes('/packages/') ? site : ours;
    total += n.selfSize;
    bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
    byOwner.set(owner(url), (byOwner.get(owner(url)) ?? 0) + n.selfSize);
    byOurs.set(mine ?? '(none of ours)', (byOurs.get(mine ?? '(none of ours)') ?? 0) + n.selfSize);
    for (const c of n.children) walk(c, mine);
  };
  walk(head, undefined);
  const lines = (m: Map<string, number>, k: number): string[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([key, bytes]) => `  ${(bytes / N).toFixed(0).padStart(6)} B  ${((100 * bytes) / total).toFixed(1).padStart(5)} %  ${key}`);
  process.stdout.write(
    [
      `\n== ${name}: ${(total / N / 1024).toFixed(1)} KB per request (${N} GETs via ${values.via}, concurrency ${concurrency})`,
      ...lines(byOwner, 12),
      '  -- sites',
      ...lines(bySite, top),
      '  -- charged to the innermost frame of ours',
      ...lines(byOurs, top),
      '',
    ].join('\n'),
  );
}

const port = Number(values.port);
process.env.BENCH_INSPECT_PORT = String(port);
const preload = fileURLToPath(new URL('./lib/inspector-preload.mjs', import.meta.url));
const path = await startFullPath({ relayNodeArgs: [`--import=${preload}`, '--max-semi-space-size=8'] });
try {
  const target = values.via === 'client' ? path.viaClient : path.viaEndpoint;
  await smallGets(target, 4_000, 1);
  await smallGets(target, 12_000, 64);
  const relays = { gateway: await inspect(port), agent: await inspect(port + 1) };
  for (const r of Object.values(relays)) {
    await r.call('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
  }
  await smallGets(target, N, concurrency);
  for (const [name, r] of Object.entries(relays)) {
    const { profile } = (await r.call('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } };
    report(name, profile.head);
    r.close();
  }
} finally {
  await path.close();
}
