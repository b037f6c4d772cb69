// File descriptors across runs: each process (each start of it, since a
// restarted process starts afresh) has a baseline taken after its first
// run; a later count above baseline + FD_SLACK is a leak. The slack covers
// pooled keep-alive connections and the odd socket in TIME_WAIT handling.
import { TARGETS, type Rig, type Target } from './rig.ts';

/** Descriptors a process may hold above its baseline before it counts as leaking. */
export const FD_SLACK = 24;

export interface FdSample {
  who: Target | 'runner';
  generation: number;
  fds: number;
  baseline: number;
}

export class LeakWatch {
  readonly #baselines = new Map<string, number>();
  /** The largest growth over a baseline seen, per process kind. */
  readonly maxGrowth = new Map<Target | 'runner', number>();

  /** Samples every process; returns the samples over baseline + FD_SLACK. */
  check(rig: Rig): FdSample[] {
    const over: FdSample[] = [];
    for (const who of [...TARGETS, 'runner'] as const) {
      const generation = who === 'runner' ? 1 : rig.generation(who);
      const fds = rig.fds(who);
      if (fds < 0) continue;
      const key = `${who}#${generation}`;
      const baseline = this.#baselines.get(key);
      if (baseline === undefined) {
        this.#baselines.set(key, fds);
        continue;
      }
      this.maxGrowth.set(who, Math.max(this.maxGrowth.get(who) ?? 0, fds - baseline));
      if (fds > baseline + FD_SLACK) over.push({ who, generation, fds, baseline });
    }
    return over;
  }
}
