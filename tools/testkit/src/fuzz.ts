// What the fuzz tests share: how many inputs (FUZZ_RUNS; `pnpm fuzz` sets
// 1,000,000), how to replay a failure (FUZZ_SEED, FUZZ_PATH: fast-check
// prints both), and what a clean refusal is.
import type fc from 'fast-check';
import { MuxError } from '@pipeops/tunnel-mux';
import { TunnelError } from '@pipeops/tunnel-protocol';

/** Inputs per fuzz target: FUZZ_RUNS, default 2,000 (the CI mode). */
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 2_000);

/** fast-check parameters: `runs` inputs (default {@link FUZZ_RUNS}), and the replay seed and path when given. */
export function fuzzParameters(runs: number = FUZZ_RUNS): fc.Parameters<unknown> {
  return {
    numRuns: Math.max(1, Math.floor(runs)),
    ...(process.env.FUZZ_SEED !== undefined ? { seed: Number(process.env.FUZZ_SEED) } : {}),
    ...(process.env.FUZZ_PATH !== undefined ? { path: process.env.FUZZ_PATH } : {}),
  };
}

/** A refusal the code means: a TunnelError or (below the protocol) a MuxError whose code starts with `prefix`. */
export function isCodedError(err: unknown, prefix = 'PT_ERR_'): boolean {
  return (err instanceof TunnelError || err instanceof MuxError) && typeof err.code === 'string' && err.code.startsWith(prefix);
}
