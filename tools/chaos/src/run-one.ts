// One chaos run: a stream of some kind through the tunnel, a fault when the
// runner has received `offset` bytes, and the verdict.
//
// What a run asserts, and the semantics chosen where issue 13 is silent:
// (a) bytes: the runner received every byte (SHA-256 of what the upstream
//     sent) with a clean end, or it was told of an error. A clean end with
//     bytes missing or wrong is a SILENT TRUNCATION. Any fault may end in
//     "complete": bytes already in flight (windows, socket buffers) may
//     carry the rest of the stream past a dead process.
// (b) timing: an error reached the runner within 2 s of a SIGKILL or a cut;
//     within the pause + 2 s of a SIGSTOP (a short pause may also end in
//     "complete"); within the freeze + 2 s of a short freeze; within the
//     keepalive (30 s interval + 10 s timeout) + 2 s of a held freeze. An
//     error later than that, or no ending at all by the run's deadline, is a
//     HANG. A throttled link (a few KiB/s for a few seconds) and a run
//     without a fault must complete: an error there is a SPURIOUS ERROR.
// (c) recovery: once the fault is over (a killed process started again on
//     its port, a stopped one continued, the link restored), a fresh request
//     through the tunnel succeeds within RECOVERY_WITHIN_MS. A held freeze
//     blackholes the agent's connection for good (new connections pass):
//     its fault is over when the runner has its error, and the agent has
//     the keepalive (+ RECOVERY_WITHIN_MS) to notice and dial again.
// (d) leaks: the stream gauges of gateway and agent and the upstream's open
//     responses return to zero within QUIESCE_WITHIN_MS; file descriptors
//     are checked across runs by the caller (./leak-watch.ts).
import { setTimeout as delay } from 'node:timers/promises';
import { Agent } from 'undici';
import { chooseFault, errorDeadlineMs, FAULT_CLASSES, inject, KEEPALIVE_DETECT_MS, type FaultClass, type FaultSpec, type FaultTimes } from './faults.ts';
import { runHttpStream, type RunnerTarget } from './http-streams.ts';
import { freshRequestOk, openCounts, type OpenCounts } from './probes.ts';
import { prng, runSeed } from './prng.ts';
import type { Rig } from './rig.ts';
import { chooseSpec, expectedOf, KINDS, type Ending, type Kind, type StreamResult, type StreamSpec } from './stream-kinds.ts';
import { runSpdyEcho, runWebSocketEcho } from './upgrade-streams.ts';

/** A fresh request must succeed this soon after the fault is over, in ms. */
export const RECOVERY_WITHIN_MS = 20_000;
/** Gauges and open responses must be back to zero this soon after the run, in ms. */
export const QUIESCE_WITHIN_MS = 5_000;
/** Beyond its error deadline, how long a run may take to end at all, in ms (a paced stream lasts a few seconds, a throttled one longer). */
const RUN_SLACK_MS = 60_000;

/** What a run is, all from (seed, run). */
export interface RunPlan {
  seed: number;
  run: number;
  stream: StreamSpec;
  fault: FaultSpec;
  /** The fault fires once the runner has this many bytes (upload: has sent). */
  offset: number;
}

export type Failure = 'truncated' | 'hang' | 'late-error' | 'spurious-error' | 'no-recovery' | 'leak' | 'harness';

export interface RunReport {
  plan: RunPlan;
  ending: Ending | 'hang';
  bytes: number;
  expectedBytes: number;
  detail?: string;
  /** ms from the fault to the runner's error (errors only). */
  errorAfterMs?: number;
  /** ms from the fault's end to a fresh request's success. */
  recoveryMs?: number;
  /** ms from the recovery check to every gauge and the upstream at zero. */
  quiesceMs?: number;
  /** ms the run took. */
  ms: number;
  open?: OpenCounts;
  failures: Failure[];
  /** Why each failure, in words. */
  why: string[];
  /** The last log lines of each process right after the run (the campaign's first failed run only). */
  tails?: Record<string, string>;
}

/**
 * The plan of run `run` of a campaign: kind and fault class from the
 * `schedule` when given (quick mode's cross product), else uniformly random.
 */
export function planRun(seed: number, run: number, schedule?: { kind: Kind; fault: FaultClass }, heldFreezeShare = 0.15): RunPlan {
  const rnd = prng(runSeed(seed, run));
  const kind = schedule?.kind ?? rnd.pick(KINDS);
  const faultClass = schedule?.fault ?? rnd.pick(FAULT_CLASSES);
  const stream = chooseSpec(kind, rnd, `s${seed}-r${run}`);
  const fault = chooseFault(faultClass, rnd, heldFreezeShare);
  const offset = rnd.int(1, Math.max(1, expectedOf(stream).bytes - 1));
  return { seed, run, stream, fault, offset };
}

function startStream(target: RunnerTarget, plan: RunPlan, onProgress: (n: number) => void, signal: AbortSignal): Promise<StreamResult> {
  const expected = expectedOf(plan.stream);
  if (plan.stream.transport === 'websocket') return runWebSocketEcho(target, plan.stream, expected, onProgress, signal);
  if (plan.stream.transport === 'spdy') return runSpdyEcho(target, plan.stream, expected, onProgress, signal);
  return runHttpStream(target, plan.stream, expected, onProgress, signal);
}

/** Polls `probe` until it is true or `withinMs` passes; resolves with the ms it took, or undefined. */
async function within(withinMs: number, intervalMs: number, probe: () => Promise<boolean>): Promise<number | undefined> {
  const t0 = Date.now();
  for (;;) {
    if (await probe().catch(() => false)) return Date.now() - t0;
    if (Date.now() - t0 >= withinMs) return undefined;
    await delay(intervalMs);
  }
}

/** Runs one plan against the rig and judges it. Never throws for a verdict; throws only if the rig itself broke. */
export async function runOne(rig: Rig, plan: RunPlan): Promise<RunReport> {
  const t0 = Date.now();
  const target: RunnerTarget = { gatewayUrl: rig.gatewayUrl, gatewayCa: rig.gatewayCa, runnerToken: rig.runnerToken };
  const failures: Failure[] = [];
  const why: string[] = [];
  const abort = new AbortController();
  const noFault = plan.fault.class === 'none';
  let fault: Promise<FaultTimes> | undefined;
  let endedResolve: () => void = () => {};
  const ended = new Promise<void>((r) => {
    endedResolve = r;
  });
  const onProgress = (n: number): void => {
    if (fault === undefined && !noFault && n >= plan.offset) fault = inject(rig, plan.fault, ended);
  };
  const errorDeadline = errorDeadlineMs(plan.fault);
  const runDeadlineMs = (errorDeadline ?? 0) + plan.fault.durationMs + RUN_SLACK_MS;
  const hangTimer = setTimeout(() => abort.abort(), runDeadlineMs);
  const result = await startStream(target, plan, onProgress, abort.signal);
  clearTimeout(hangTimer);
  endedResolve();
  const times = fault === undefined ? undefined : await fault;

  const report: RunReport = {
    plan,
    ending: abort.signal.aborted ? 'hang' : result.ending,
    bytes: result.bytes,
    expectedBytes: result.expectedBytes,
    ms: 0,
    failures,
    why,
  };
  if (result.detail !== undefined) report.detail = result.detail;
  if (report.ending === 'hang') {
    failures.push('hang');
    why.push(`no ending within ${runDeadlineMs} ms (${result.bytes} of ${result.expectedBytes} bytes)`);
  } else if (result.ending === 'truncated') {
    failures.push('truncated');
    why.push(`silent truncation: ${result.detail ?? ''}`);
  } else if (result.ending === 'error') {
    if (times === undefined || errorDeadline === undefined) {
      failures.push('spurious-error');
      why.push(`error ${times === undefined ? 'before the fault fired' : `under ${plan.fault.class}`}: ${result.detail ?? ''}`);
    } else {
      report.errorAfterMs = Math.max(0, result.at - times.at);
      if (report.errorAfterMs > errorDeadline) {
        failures.push('late-error');
        why.push(`error ${report.errorAfterMs} ms after the fault (bound ${errorDeadline} ms): ${result.detail ?? ''}`);
      }
    }
  } else if (!noFault && times === undefined) {
    why.push('complete before the fault fired');
  }

  // (c) recovery, from the fault's end.
  const overAt = times?.overAt ?? Date.now();
  const recoveryBoundMs = plan.fault.held ? KEEPALIVE_DETECT_MS + RECOVERY_WITHIN_MS : RECOVERY_WITHIN_MS;
  const recovery = await within(recoveryBoundMs, 100, () => freshRequestOk(target));
  if (recovery === undefined) {
    failures.push('no-recovery');
    why.push(`no successful fresh request within ${recoveryBoundMs} ms of the fault's end`);
  } else report.recoveryMs = Date.now() - overAt;

  // (d) nothing left open.
  const probe = new Agent({ connect: { ca: [rig.gatewayCa, rig.upstreamCa] }, allowH2: false });
  try {
    let last: OpenCounts | undefined;
    const quiet = await within(QUIESCE_WITHIN_MS, 100, async () => {
      last = await openCounts(rig, probe);
      return last.gateway === 0 && last.agent === 0 && last.upstream === 0;
    });
    if (last !== undefined) report.open = last;
    if (quiet !== undefined) report.quiesceMs = quiet;
    if (quiet === undefined) {
      failures.push('leak');
      why.push(`still open ${QUIESCE_WITHIN_MS} ms after the run: ${JSON.stringify(last ?? 'metrics unreadable')}`);
    }
  } finally {
    await probe.destroy().catch(() => {});
    rig.relay.restore(); // drops blackholed connections, if any
  }
  report.ms = Date.now() - t0;
  return report;
}
