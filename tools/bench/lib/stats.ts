/** Summary of the samples of one measurement, in the metric's unit. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

/** Median, min and max of a non-empty list of samples. */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, samples: [...samples] };
}

/** Throughput in MB/s (10^6 bytes per second) of `bytes` moved in `ns` nanoseconds. */
export function mbPerSecond(bytes: number, ns: bigint): number {
  return bytes / 1e6 / (Number(ns) / 1e9);
}

/** The `p`th percentile (0–100, nearest rank) of a non-empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}
