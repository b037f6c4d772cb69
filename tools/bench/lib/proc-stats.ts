import { readFileSync, readdirSync } from 'node:fs';

/** Open file descriptors of process `pid` (entries of /proc/PID/fd). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size of process `pid` in bytes, from /proc/PID/status (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** The CPU time of one process at one moment, for {@link cpuSecondsSince}. */
export interface CpuSnapshot {
  pid: number;
  /** Nanoseconds each live thread has spent on a CPU, by thread id. */
  threadNs: Map<number, number>;
  /** utime + stime of the whole process (exited threads included), in clock ticks. */
  ticks: number;
}

/**
 * CPU time of process `pid` now: per thread, the first field of
 * /proc/PID/task/TID/schedstat (the scheduler's sum_exec_runtime, user and
 * system alike, in nanoseconds; /proc/PID/schedstat is the main thread's
 * alone), and for the whole process utime + stime from /proc/PID/stat, which
 * counts every thread but in 10 ms ticks, too coarse for a sample of a second.
 */
export function cpuSnapshot(pid: number): CpuSnapshot {
  const threadNs = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let schedstat: string;
    try {
      schedstat = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
    } catch {
      continue; // the thread exited since the directory was listed
    }
    threadNs.set(Number(tid), Number(schedstat.slice(0, schedstat.indexOf(' '))));
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
  return { pid, threadNs, ticks: Number(fields[11]) + Number(fields[12]) };
}

/**
 * CPU seconds (user + system, every thread) the process of `before` has used
 * since. The sum of its threads' nanoseconds when every thread of `before` is
 * still there; when one has exited its time is no longer listed, so the
 * whole-process ticks stand in (10 ms resolution), as they do when they count
 * more than the threads listed (a thread started and gone meanwhile). A
 * thread started meanwhile and still there counts in full.
 */
export function cpuSecondsSince(before: CpuSnapshot): number {
  return cpuSplitSince(before).seconds;
}

/**
 * {@link cpuSecondsSince}, and how much of it the main thread used (the one
 * whose id is the pid: a Node process's JavaScript; the rest is V8's GC and
 * compiler threads and libuv's pool).
 */
export function cpuSplitSince(before: CpuSnapshot): { seconds: number; mainSeconds: number } {
  const now = cpuSnapshot(before.pid);
  const main = (now.threadNs.get(before.pid) ?? 0) - (before.threadNs.get(before.pid) ?? 0);
  const ticks = (now.ticks - before.ticks) / TICKS_PER_SECOND;
  let ns = 0;
  for (const [tid, then] of before.threadNs) {
    const t = now.threadNs.get(tid);
    if (t === undefined || t < then) return { seconds: ticks, mainSeconds: Math.min(ticks, main / 1e9) };
    ns += t - then;
  }
  for (const [tid, t] of now.threadNs) if (!before.threadNs.has(tid)) ns += t;
  // A thread that started and exited meanwhile is in neither list, only in the ticks (two fields rounded to 10 ms).
  return { seconds: ticks - ns / 1e9 > 0.03 ? ticks : ns / 1e9, mainSeconds: main / 1e9 };
}

/** Peak RSS of `pid` sampled every `intervalMs` while `work` runs, in bytes (the start value included). */
export async function peakRssDuring<T>(
  pids: readonly number[],
  work: () => Promise<T>,
  intervalMs = 50,
): Promise<{ result: T; start: number[]; peak: number[] }> {
  const start = pids.map(rssBytes);
  const peak = [...start];
  const sample = (): void => {
    pids.forEach((pid, i) => {
      try {
        peak[i] = Math.max(peak[i]!, rssBytes(pid));
      } catch {
        /* exited */
      }
    });
  };
  const timer = setInterval(sample, intervalMs);
  try {
    const result = await work();
    sample();
    return { result, start, peak };
  } finally {
    clearInterval(timer);
  }
}
