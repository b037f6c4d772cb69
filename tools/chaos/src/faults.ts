// The faults of a chaos run and how each is injected and ended. Durations
// here are the faults' own (how long a process stays stopped, a link
// frozen or throttled), not waits for something to happen.
import { setTimeout as delay } from 'node:timers/promises';
import type { Prng } from './prng.ts';
import type { Rig, Target } from './rig.ts';

/** The mux keepalive of agent and gateway (@pipeops/tunnel-mux defaults: a ping every 30 s, the session dead 10 s without its answer), in ms. */
export const KEEPALIVE_DETECT_MS = 30_000 + 10_000;
/** How soon after a fault (or its end, for a pause) an error must reach the runner, in ms. */
export const ERROR_WITHIN_MS = 2_000;

export type FaultClass =
  | 'none'
  | 'kill-gateway'
  | 'kill-agent'
  | 'kill-apiserver'
  | 'stop-gateway'
  | 'stop-agent'
  | 'stop-apiserver'
  | 'relay-cut'
  | 'relay-freeze'
  | 'relay-throttle';
export const FAULT_CLASSES: readonly FaultClass[] = [
  'none',
  'kill-gateway',
  'kill-agent',
  'kill-apiserver',
  'stop-gateway',
  'stop-agent',
  'stop-apiserver',
  'relay-cut',
  'relay-freeze',
  'relay-throttle',
];

export interface FaultSpec {
  class: FaultClass;
  /** stop: how long the process stays stopped; freeze, throttle: how long the link stays so (unless held), in ms. */
  durationMs: number;
  /**
   * freeze: the link's current connections are blackholed (new ones pass)
   * until the runner's stream has ended (the tunnel's keepalive gave up) or
   * KEEPALIVE_DETECT_MS + ERROR_WITHIN_MS passed; they are destroyed only
   * after the run, so the agent must find out by its own keepalive too.
   */
  held: boolean;
  /** throttle: bytes per second, each direction. */
  bytesPerSecond: number;
  /** cut: a RST each way, or a FIN each way. */
  cutHow: 'reset' | 'close';
}

/** Parameters of a fault of class `c`, from `rnd`; `heldFreezeShare` of freezes are held. */
export function chooseFault(c: FaultClass, rnd: Prng, heldFreezeShare: number): FaultSpec {
  const spec: FaultSpec = { class: c, durationMs: 0, held: false, bytesPerSecond: 0, cutHow: 'reset' };
  if (c.startsWith('stop-')) return { ...spec, durationMs: rnd.int(200, 4_000) };
  if (c === 'relay-freeze') return { ...spec, held: rnd.chance(heldFreezeShare), durationMs: rnd.int(200, 4_000) };
  if (c === 'relay-cut') return { ...spec, cutHow: rnd.pick(['reset', 'close'] as const) };
  if (c === 'relay-throttle') return { ...spec, durationMs: rnd.int(500, 3_000), bytesPerSecond: rnd.pick([4_096, 16_384, 65_536]) };
  return spec;
}

/** The latest an error may reach the runner, in ms after the fault began; undefined: no error is acceptable (none, throttle). */
export function errorDeadlineMs(f: FaultSpec): number | undefined {
  switch (f.class) {
    case 'none':
    case 'relay-throttle':
      return undefined;
    case 'stop-gateway':
    case 'stop-agent':
    case 'stop-apiserver':
      return f.durationMs + ERROR_WITHIN_MS;
    case 'relay-freeze':
      return f.held ? KEEPALIVE_DETECT_MS + ERROR_WITHIN_MS : f.durationMs + ERROR_WITHIN_MS;
    default:
      return ERROR_WITHIN_MS;
  }
}

export function targetOf(c: FaultClass): Target | undefined {
  const m = /^(kill|stop)-(gateway|agent|apiserver)$/.exec(c);
  return m === null ? undefined : (m[2] as Target);
}

/** When a fault began and ended (`Date.now()`). */
export interface FaultTimes {
  at: number;
  /** The process restarted (spawned) or continued, the link restored. */
  overAt: number;
}

/**
 * Injects `f` and ends it: a killed process is started again at once (on the
 * same port), a stopped one continued after `durationMs`, the link restored.
 * A held freeze (blackhole) is over, for the harness, once `ended` resolves
 * (the runner's stream ended) or its deadline passes; its connections stay
 * blackholed until the caller's `relay.restore()` after the run.
 */
export async function inject(rig: Rig, f: FaultSpec, ended: Promise<unknown>): Promise<FaultTimes> {
  const t = targetOf(f.class);
  const at = Date.now();
  if (f.class.startsWith('kill-') && t !== undefined) {
    await rig.kill(t);
    const overAt = Date.now();
    await rig.restart(t);
    return { at, overAt };
  }
  if (f.class.startsWith('stop-') && t !== undefined) {
    rig.signal(t, 'SIGSTOP');
    await delay(f.durationMs);
    rig.signal(t, 'SIGCONT');
    return { at, overAt: Date.now() };
  }
  if (f.class === 'relay-cut') {
    rig.relay.cut(f.cutHow);
    return { at, overAt: at };
  }
  if (f.class === 'relay-freeze' && f.held) {
    rig.relay.blackhole();
    await Promise.race([ended, delay(KEEPALIVE_DETECT_MS + ERROR_WITHIN_MS)]);
    return { at, overAt: Date.now() };
  }
  if (f.class === 'relay-freeze') {
    rig.relay.freeze();
    await delay(f.durationMs);
    rig.relay.restore();
    return { at, overAt: Date.now() };
  }
  if (f.class === 'relay-throttle') {
    rig.relay.throttle(f.bytesPerSecond);
    await delay(f.durationMs);
    rig.relay.restore();
    return { at, overAt: Date.now() };
  }
  return { at, overAt: at };
}
