/** The q-quantile (0…1) of `values` by nearest rank; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** `median / p99 / max` in ms, or `-` when there are none. */
export function timings(values: readonly number[]): string {
  if (values.length === 0) return '-';
  return `${quantile(values, 0.5)} / ${quantile(values, 0.99)} / ${Math.max(...values)}`;
}
