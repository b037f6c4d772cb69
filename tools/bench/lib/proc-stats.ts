import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's utime/stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** Resident set size of process `pid` in bytes, from /proc/PID/status (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** CPU time (user + system) process `pid` has used so far, in seconds, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Peak RSS of `pid` sampled every `intervalMs` while `work` runs, in bytes (the start value included). */
export async function peakRssDuring<T>(pids: readonly number[], work: () => Promise<T>, intervalMs = 50): Promise<{ result: T; start: number[]; peak: number[] }> {
  const start = pids.map(rssBytes);
  const peak = [...start];
  const sample = (): void => {
    pids.forEach((pid, i) => {
      try { peak[i] = Math.max(peak[i]!, rssBytes(pid)); } catch { /* exited */ }
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
