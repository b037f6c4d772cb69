// What the soak asserts of its two snapshots, and the table it prints.
//
// Leak bounds, per process (gateway, agent), end against baseline, both taken
// after the same quiet period and two forced full GCs:
//   - open file descriptors: at most baseline + max(5 %, 2 fds)
//   - V8 heap used: at most baseline + max(5 %, 2 MiB)
// The absolute floors keep a tiny baseline (≈ 25 fds, ≈ 20 MB of heap) from
// turning noise into failures: a pooled keep-alive socket, or the compiled
// code of a path first taken after the baseline, is not a leak; 100,000
// streams leaking one fd or 100 bytes each would still be 100,000 fds or
// 10 MB. Below the baseline is fine. RSS, external and arrayBuffers are
// reported, not asserted (the allocator decides when RSS is returned).
// Stream accounting: opened = closed + active for every kind on both sides,
// and active = 0 at the end.
import type { ProcessSnapshot, SoakSide } from './soak-rig.ts';
import { accountingProblems } from './stream-accounting.ts';

const MiB = 1024 * 1024;
const MB = 1e6;

export const FD_SLACK = { share: 0.05, floor: 2 } as const;
export const HEAP_SLACK = { share: 0.05, floorBytes: 2 * MiB } as const;

export interface Verdict {
  problems: string[];
  table: string;
}

const pct = (base: number, end: number): string => (base === 0 ? 'n/a' : `${end >= base ? '+' : ''}${(((end - base) / base) * 100).toFixed(1)} %`);

export function soakVerdict(base: Record<SoakSide, ProcessSnapshot>, end: Record<SoakSide, ProcessSnapshot>): Verdict {
  const problems: string[] = [];
  const rows: string[][] = [['process', 'figure', 'baseline', 'end', 'Δ', 'bound', 'ok']];
  for (const side of ['gateway', 'agent'] as const) {
    const b = base[side];
    const e = end[side];
    const fdBound = b.fds + Math.max(Math.ceil(b.fds * FD_SLACK.share), FD_SLACK.floor);
    const heapBound = b.memory.heapUsed + Math.max(b.memory.heapUsed * HEAP_SLACK.share, HEAP_SLACK.floorBytes);
    const fdOk = e.fds <= fdBound;
    const heapOk = e.memory.heapUsed <= heapBound;
    if (!fdOk) problems.push(`${side}: ${e.fds} open fds at the end, baseline ${b.fds}, bound ${fdBound}`);
    if (!heapOk)
      problems.push(
        `${side}: heap used ${(e.memory.heapUsed / MB).toFixed(1)} MB at the end, baseline ${(b.memory.heapUsed / MB).toFixed(1)} MB, bound ${(heapBound / MB).toFixed(1)} MB`,
      );
    rows.push([side, 'open fds', String(b.fds), String(e.fds), pct(b.fds, e.fds), `≤ ${fdBound}`, fdOk ? 'yes' : 'NO']);
    const mb = (n: number): string => (n / MB).toFixed(1);
    rows.push([
      side,
      'heap used after GC (MB)',
      mb(b.memory.heapUsed),
      mb(e.memory.heapUsed),
      pct(b.memory.heapUsed, e.memory.heapUsed),
      `≤ ${mb(heapBound)}`,
      heapOk ? 'yes' : 'NO',
    ]);
    rows.push([side, 'external (MB)', mb(b.memory.external), mb(e.memory.external), pct(b.memory.external, e.memory.external), '', '']);
    rows.push([side, 'arrayBuffers (MB)', mb(b.memory.arrayBuffers), mb(e.memory.arrayBuffers), pct(b.memory.arrayBuffers, e.memory.arrayBuffers), '', '']);
    rows.push([side, 'RSS (MB)', mb(b.rss), mb(e.rss), pct(b.rss, e.rss), '', '']);
    const accounting = accountingProblems(side, e.streams, true);
    problems.push(...accountingProblems(side, b.streams, false), ...accounting);
    for (const [kind, n] of e.streams) {
      const results = Object.entries(n.results)
        .filter(([, v]) => v > 0)
        .map(([r, v]) => `${r} ${v}`)
        .join(', ');
      const ok = n.opened === n.closed + n.active && n.active === 0;
      rows.push([side, `streams ${kind}: opened = closed + active`, '', `${n.opened} = ${n.closed} + ${n.active}`, results, 'active = 0', ok ? 'yes' : 'NO']);
    }
  }
  return { problems, table: formatRows(rows) };
}

export function formatRows(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
