// The greedy runner of the fairness scenario, as its own process (a second
// runner is a second program; in the bench process its CPU would slow the
// polite runner's event loop, which is not the tunnel's doing).
//
//   BENCH_RUNNER_TOKEN=… node greedy-runner.ts --origin URL --prefix /k8s/clusters/bench \
//     --ca FILE --concurrency N --bytes N
//
// Runs `concurrency` workers, each GETting the upstream's blob route over and
// over (HTTP/1.1 keep-alive, one connection per worker, as undici's Agent
// gives). Once every worker has had the head of its first answer it prints
// `READY {"rampMs":…}` and the measurement window opens; when its stdin
// closes it aborts whatever is in flight and prints `DONE {…}` with what the
// window saw, then exits.
//
// A 429 (the gateway's per-runner stream limit) is counted and the worker
// waits `Retry-After` seconds (1 s without one) before asking again, as
// client-go does; any other failure is counted and retried after 250 ms.
// Neither ends the run.
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';

/** Wait after a failure other than 429 before the worker asks again: 250 ms. */
const FAILURE_BACKOFF_MS = 250;
/** Wait after a 429 without a usable `Retry-After`: 1 s. */
const DEFAULT_RETRY_AFTER_MS = 1_000;

/** What the window saw; printed as `DONE {json}`. */
export interface GreedyReport {
  /** Body bytes received while the window was open. */
  bytes: number;
  /** Window length, s (READY → stdin closed). */
  seconds: number;
  /** Responses read to their end while the window was open. */
  completed: number;
  /** 429 answers while the window was open (and before it: `status429Ramp`). */
  status429: number;
  status429Ramp: number;
  /** Answers with another non-200 status, and requests that failed (reset, refused), while the window was open. */
  failures: number;
  /** The first few failure descriptions, for the log. */
  failureSamples: string[];
  /** Start → READY, ms. */
  rampMs: number;
}

const { values } = parseArgs({
  options: {
    origin: { type: 'string' },
    prefix: { type: 'string', default: '' },
    ca: { type: 'string' },
    concurrency: { type: 'string' },
    bytes: { type: 'string' },
  },
});
const concurrency = Number(values.concurrency);
const bytes = Number(values.bytes);
const token = process.env.BENCH_RUNNER_TOKEN;
if (values.origin === undefined || values.ca === undefined || token === undefined || !(concurrency > 0) || !(bytes > 0)) {
  throw new Error('greedy-runner: --origin, --ca, --concurrency, --bytes and BENCH_RUNNER_TOKEN are required');
}
const url = `${values.origin}${values.prefix}/bench/blob?bytes=${bytes}`;
const headers = { authorization: `Bearer ${token}` };
const dispatcher = new Agent({ connect: { ca: readFileSync(values.ca) }, keepAliveTimeout: 30_000, connections: null, allowH2: false });

const stop = new AbortController();
const report: GreedyReport = { bytes: 0, seconds: 0, completed: 0, status429: 0, status429Ramp: 0, failures: 0, failureSamples: [], rampMs: 0 };
const started = performance.now();
let windowStart = 0;
let windowOpen = false;
let answered = 0;

function firstAnswer(seen: { head: boolean }): void {
  if (seen.head) return;
  seen.head = true;
  if (++answered < concurrency) return;
  windowStart = performance.now();
  windowOpen = true;
  report.rampMs = windowStart - started;
  process.stdout.write(`READY ${JSON.stringify({ rampMs: report.rampMs })}\n`);
}

function failed(what: string): void {
  if (!windowOpen) return;
  report.failures++;
  if (report.failureSamples.length < 5) report.failureSamples.push(what);
}

/** `Retry-After` in ms (delta-seconds form; an HTTP date or garbage → the default). */
function retryAfterMs(value: string | string[] | undefined): number {
  const s = Number(Array.isArray(value) ? value[0] : value);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : DEFAULT_RETRY_AFTER_MS;
}

async function worker(): Promise<void> {
  const seen = { head: false };
  while (!stop.signal.aborted) {
    let waitMs = 0;
    try {
      const res = await request(url, { dispatcher, headers, signal: stop.signal, bodyTimeout: 0 });
      firstAnswer(seen);
      if (res.statusCode === 200) {
        for await (const chunk of res.body) if (windowOpen) report.bytes += (chunk as Buffer).length;
        if (windowOpen) report.completed++;
      } else {
        const text = await res.body.text();
        if (res.statusCode === 429) {
          if (windowOpen) report.status429++;
          else report.status429Ramp++;
          waitMs = retryAfterMs(res.headers['retry-after']);
        } else {
          failed(`HTTP ${res.statusCode} ${text.slice(0, 120)}`);
          waitMs = FAILURE_BACKOFF_MS;
        }
      }
    } catch (err) {
      if (stop.signal.aborted) return;
      firstAnswer(seen);
      failed(`${(err as Error).name}: ${(err as Error).message}`);
      waitMs = FAILURE_BACKOFF_MS;
    }
    if (waitMs > 0) await sleep(waitMs, undefined, { signal: stop.signal }).catch(() => {});
  }
}

const workers = Array.from({ length: concurrency }, worker);
process.stdin.resume();
process.stdin.once('end', () => {
  if (windowOpen) report.seconds = (performance.now() - windowStart) / 1000;
  windowOpen = false;
  stop.abort();
});
await Promise.allSettled(workers);
await dispatcher.destroy().catch(() => {});
process.stdout.write(`DONE ${JSON.stringify(report)}\n`);
