// Bookkeeping that must not hold a relay's output back. A relay's answer
// leaves in the check phase of the turn that produced it (the mux session
// holds a turn's frames until `setImmediate`, so that they leave as one
// write); an exchange's audit record and metrics, made when its streams
// finish in that same turn, ran before that write. Queued here they run
// after it, in one `setImmediate` for the whole turn: one request at a time,
// ~20–30 µs of each relay's work is no longer between the API server's
// answer and the runner.

const queue: Array<() => void> = [];
let scheduled = false;

function runQueued(): void {
  scheduled = false;
  const tasks = queue.splice(0);
  let failure: { err: unknown } | undefined;
  for (const task of tasks) {
    try {
      task();
    } catch (err) {
      failure ??= { err };
    }
  }
  // A task that throws is a bug: the others still run, then its error is thrown (uncaught, as a bug should be).
  if (failure !== undefined) throw failure.err;
}

const schedule = (): void => {
  setImmediate(runQueued);
};

/**
 * Runs `task` after the output this turn has produced so far: in the check
 * phase, after the write that a mux session queues when it flushes. The
 * session flushes in a microtask queued by the first write of the turn, so
 * the `setImmediate` here is queued from a microtask too, after that one.
 * For records and counters, never for what the peer waits on.
 */
export function afterOutput(task: () => void): void {
  queue.push(task);
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(schedule);
}
