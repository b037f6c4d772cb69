import type { FullPath } from '../lib/full-path.ts';
import { startGreedy } from '../lib/greedy-process.ts';
import { smallGets, smallGetsFor } from '../lib/http-load.ts';
import { percentile } from '../lib/stats.ts';
import { untilStats } from '../lib/upstream-control.ts';
import type { BenchOptions, Figures, Rig, Scenario } from './types.ts';
import { viaText } from './http-throughput.ts';

const MiB = 1024 * 1024;
const NAME = 'greedy-vs-polite';
const GREEDY = 'bench-greedy';
const POLITE = 'bench-polite';
/** Each greedy download: 8 MiB, large enough that the greedy runner's streams are bulk, small enough that they finish and start again within a window. */
const GREEDY_BYTES = 8 * MiB;
/** After the greedy runner stopped, the upstream must not have written for this long before the next sample. */
const QUIET_MS = 500;

/**
 * Fairness between two runners on one cluster. The greedy runner (its own
 * runner id and token, its own process) keeps G bulk downloads in flight
 * (G = 200, 32 with --quick); meanwhile the polite runner (another id and
 * token) does small GETs one at a time. Both go through the gateway's
 * /k8s/clusters endpoint, as kubectl with a `pipeops-tunnel kubeconfig`
 * does, and share one agent and one tunnel.
 *
 * The `tunnel` side is the polite runner under the greedy load; the `direct`
 * side (baseline `alone`) is the same polite runner through the same tunnel
 * with no greedy load, in the same round (ABBA). The greedy runner counts
 * 429 answers (a per-runner stream limit at the gateway) and keeps going.
 */
export const greedyVsPolite: Scenario = fairnessScenario(NAME, undefined);

/** The greedy runner's byte rate in the capped variant: 8 MB/s, about a third of what one saturating runner pulls on the 2-core machine. */
const CAPPED_BYTES_PER_SECOND = 8_000_000;

/**
 * The same with the greedy runner's tokens-file `limits: { bytes_per_second }`
 * set: equal scheduling shares cannot shorten queues that form in CPU-bound
 * processes and in the kernel's TCP buffers between them; taking less does.
 */
export const greedyCappedVsPolite: Scenario = fairnessScenario(`${NAME}-capped`, CAPPED_BYTES_PER_SECOND);

function fairnessScenario(NAME: string, greedyBytesPerSecond: number | undefined): Scenario {
  const m = (what: string): string => `${NAME}-${what}`;
  const capped = greedyBytesPerSecond === undefined ? '' : ` (the greedy runner limited to ${String(greedyBytesPerSecond / 1e6)} MB/s by bytes_per_second)`;
  return {
    name: NAME,
    metrics: [
      {
        name: m('p50'),
        unit: 'ms',
        baseline: 'alone',
        description: `polite runner's small GET (~1 KiB JSON) at concurrency 1, median latency, while another runner keeps 200 (32 with --quick) 8 MiB downloads in flight on the same cluster${capped}; alone = no greedy load; ${viaText('endpoint')}, each runner its own id and token`,
        target: null,
      },
      {
        name: m('p99'),
        unit: 'ms',
        baseline: 'alone',
        description: 'same, 99th percentile; target: under contention at most 5× alone',
        target: { kind: 'ratio_at_most', value: 5 },
      },
      { name: m('polite-rate'), unit: 'req/s', baseline: 'alone', description: "same, the polite runner's requests per second", target: null },
      {
        name: m('greedy-mbps'),
        unit: 'MB/s',
        description: "greedy runner's aggregate body bytes received per second over the window (the polite runner's measurement)",
        target: null,
      },
      {
        name: m('greedy-429'),
        unit: 'count',
        description: 'greedy runner: 429 answers, while its load ramped up and during the window (it waits Retry-After and asks again)',
        target: null,
      },
      {
        name: m('greedy-failures'),
        unit: 'count',
        description: 'greedy runner: other failures during the window (non-200 answers, reset or refused requests)',
        target: null,
      },
    ],
    // 4 rounds of a 20 s window each side keep the full run under 4 minutes; ABBA stays balanced.
    rounds: (o) => (o.quick ? 3 : 4),
    async setup(o: BenchOptions): Promise<Rig> {
      const path = await o.startFullPath({
        runners: [GREEDY, POLITE],
        ...(greedyBytesPerSecond !== undefined ? { runnerLimits: { [GREEDY]: { bytes_per_second: greedyBytesPerSecond } } } : {}),
      });
      const greedy = path.runners.get(GREEDY)!;
      const polite = path.runners.get(POLITE)!.viaEndpoint;
      const concurrency = o.quick ? 32 : 200;
      const windowMs = o.quick ? 5_000 : 20_000;
      const maxGets = o.quick ? 1_000 : 5_000;
      const greedyOptions = {
        origin: greedy.viaEndpoint.origin,
        prefix: greedy.viaEndpoint.prefix,
        token: greedy.token,
        caFile: greedy.caFile,
        concurrency,
        bytes: GREEDY_BYTES,
      };

      // Warm-up, untimed: the polite path, then the greedy load once up to established (connections, JIT of the bulk path).
      await smallGets(polite, 500, 1);
      await (await startGreedy(greedyOptions)).stop();
      await quiet(path);

      const politeFigures = (latencies: number[], perSecond: number): Figures => ({
        [m('p50')]: percentile(latencies, 50),
        [m('p99')]: percentile(latencies, 99),
        [m('polite-rate')]: perSecond,
      });
      return {
        async tunnel() {
          const run = await startGreedy(greedyOptions);
          const gets = await smallGetsFor(polite, maxGets, windowMs).catch(async (err: unknown) => {
            await run.stop().catch(() => {});
            throw err;
          });
          const report = await run.stop();
          await quiet(path);
          if (report.failureSamples.length > 0)
            process.stderr.write(`\n  greedy runner failures (first ${report.failureSamples.length}): ${report.failureSamples.join(' | ')}\n`);
          return {
            ...politeFigures(gets.latencies, gets.perSecond),
            [m('greedy-mbps')]: report.bytes / 1e6 / report.seconds,
            [m('greedy-429')]: report.status429Ramp + report.status429,
            [m('greedy-failures')]: report.failures,
          };
        },
        async direct() {
          const gets = await smallGetsFor(polite, maxGets, windowMs);
          return politeFigures(gets.latencies, gets.perSecond);
        },
        peer: null,
        close: () => path.close(),
      };
    },
  };
}

/** Waits until the upstream has written no blob bytes for {@link QUIET_MS}: the aborted downloads are gone from the path. */
async function quiet(path: FullPath): Promise<void> {
  let last = -1;
  let since = Date.now();
  await untilStats(
    path.upstream,
    'the blob writers to stop after the greedy runner',
    (s) => {
      if (s.blobBytesWritten !== last) {
        last = s.blobBytesWritten;
        since = Date.now();
        return false;
      }
      return Date.now() - since >= QUIET_MS;
    },
    30_000,
  );
}
