// Preloaded into a gateway and an agent (`--import`) by tools/bench/garbage.ts:
// opens the V8 inspector of a `gateway` on BENCH_INSPECT_PORT and of a
// `connect` (the agent) on BENCH_INSPECT_PORT + 1, 127.0.0.1 only. The
// launcher then does not re-execute node (an inspector is open), so the
// caller passes the young-generation flag itself.
import inspector from 'node:inspector';

const base = Number(process.env.BENCH_INSPECT_PORT);
const command = process.argv.includes('gateway') ? 0 : process.argv.includes('connect') ? 1 : -1;
if (Number.isInteger(base) && base > 0 && command >= 0) inspector.open(base + command, '127.0.0.1');
