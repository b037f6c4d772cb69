// Many idle WATCH streams from one runner, and the time an event the
// upstream emits takes to reach the runner.
import { request } from 'undici';
import type { Target } from './full-path.ts';
import { WATCH_PATH } from './http-load.ts';

export interface OpenWatches {
  /** Resolves with the latencies (ms) of the next `count` events received, emitted by `emit()`. */
  events(count: number, emit: () => Promise<void>): Promise<number[]>;
  close(): void;
}

/** Opens `count` WATCH requests through `t`, `parallel` handshakes at a time; resolves when every response head arrived. */
export async function openWatches(t: Target, count: number, parallel = 256): Promise<OpenWatches> {
  const bodies: Array<{ destroy(): void }> = [];
  let waiting: { left: number; latencies: number[]; done: () => void } | undefined;
  const onLine = (line: string): void => {
    const event = JSON.parse(line) as { emittedAtNs: string };
    const ms = Number(process.hrtime.bigint() - BigInt(event.emittedAtNs)) / 1e6;
    if (waiting === undefined) return;
    waiting.latencies.push(ms);
    if (--waiting.left === 0) waiting.done();
  };
  const openOne = async (): Promise<void> => {
    const res = await request(`${t.origin}${t.prefix}${WATCH_PATH}`, { dispatcher: t.dispatcher, headers: t.headers, headersTimeout: 60_000, bodyTimeout: 0 });
    if (res.statusCode !== 200) throw new Error(`WATCH via ${t.origin}: HTTP ${res.statusCode} ${await res.body.text()}`);
    bodies.push(res.body);
    let partial = '';
    res.body.setEncoding('utf8');
    res.body.on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line !== '') onLine(line);
    });
    res.body.on('error', () => {});
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      while (next < count) {
        next++;
        await openOne();
      }
    }),
  );
  return {
    async events(n, emit) {
      const latencies: number[] = [];
      const done = new Promise<void>((resolve) => {
        waiting = { left: n, latencies, done: resolve };
      });
      await emit();
      await done;
      waiting = undefined;
      return latencies;
    },
    close() {
      for (const b of bodies) b.destroy();
    },
  };
}
