// A relay that has had nothing to do for a while gives its unused memory
// back. V8 never does this by itself in a Node process: the young generation
// a busy relay grew (up to 2 × 8 MiB, see bin/launcher.js) and the pages of
// collected old-generation objects stay committed while the process sleeps,
// because no allocation triggers the collection that would shrink them. One
// memory-reducing collection (V8's "last resort" flavour: full mark-compacts
// until nothing more is freed, the young generation shrunk to its initial
// size, freed pages returned to the system) takes an idle agent from ~113 to
// ~80 MB RSS (docs/benchmarks.md), costs tens of milliseconds of CPU, and is
// run at most once per quiet period.
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from 'pino';

/** How often the activity is looked at, as a fraction of the quiet period (a trim comes 1–1.25 quiet periods after the last work). */
const CHECKS_PER_QUIET_PERIOD = 4;

export interface IdleTrimOptions {
  /** How long there must have been no work before memory is given back, ms (> 0). */
  quietMs: number;
  /** A number that changes whenever work arrived (streams accepted so far). */
  activity(): number;
  /** Whether work is in progress now (streams being served). */
  busy(): boolean;
  logger: Logger;
  /** The collection; default: V8's memory-reducing one. */
  collect?: () => void;
  /** The clock, ms; default performance.now. */
  now?: () => number;
}

/** A started trimmer: `check()` is what its timer runs (exposed so it can be driven without waiting), `stop()` ends it. */
export interface IdleTrim {
  check(): void;
  stop(): void;
}

/**
 * Trims memory once each time the process has been without work for
 * `quietMs`: the start-up counts as work, so a freshly connected agent is
 * trimmed after its first quiet period, and again after each later burst.
 * The timer is unref'd and never keeps the process alive.
 */
export function trimWhenIdle(o: IdleTrimOptions): IdleTrim {
  const now = o.now ?? (() => performance.now());
  const collect = o.collect ?? memoryReducingCollection();
  let seen = o.activity();
  let lastWork = now();
  let trimmed = false;
  const check = (): void => {
    const activity = o.activity();
    const t = now();
    if (activity !== seen || o.busy()) {
      seen = activity;
      lastWork = t;
      trimmed = false;
      return;
    }
    if (trimmed || t - lastWork < o.quietMs) return;
    trimmed = true;
    const before = process.memoryUsage.rss();
    const t0 = performance.now();
    collect();
    const ms = performance.now() - t0;
    o.logger.debug(
      { event: 'memory_trimmed', rssBeforeMb: mb(before), rssAfterMb: mb(process.memoryUsage.rss()), ms: Math.round(ms) },
      'idle: unused memory given back',
    );
  };
  const timer = setInterval(check, Math.max(1, Math.floor(o.quietMs / CHECKS_PER_QUIET_PERIOD)));
  timer.unref();
  return { check, stop: () => clearInterval(timer) };
}

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/**
 * V8's memory-reducing full collection. The `gc` function V8 exposes only
 * with --expose-gc is taken from a fresh context made while the flag is on,
 * so the process's own global object never gets a `gc`.
 */
export function memoryReducingCollection(): () => void {
  let gc: GcFunction;
  v8.setFlagsFromString('--expose-gc');
  try {
    gc = vm.runInNewContext('gc') as GcFunction;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
  return () => gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}

function mb(bytes: number): number {
  return Math.round(bytes / 1e5) / 10;
}
