import os from 'node:os';
import type { Summary } from './stats.ts';

/** What the JSON report says about the machine the figures come from. */
export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  node: string;
  platform: string;
  arch: string;
  totalMemoryBytes: number;
  date: string;
  quick: boolean;
  rounds: number;
  totalBytesPerSample: number;
}

/** One scenario's line in the JSON report: `tunnel` = mux median, `direct` = raw ws median. */
export interface ScenarioReport {
  name: string;
  unit: string;
  description: string;
  tunnel: number;
  direct: number | null;
  /** Figure of a third-party peer (e.g. another tunnel) in the same run; none yet. */
  peer: null;
  /** Target figure, once one is agreed; none yet. */
  target: null;
  /** tunnel / direct medians. */
  ratio: number | null;
  detail: { tunnel: Summary; direct: Summary | null };
}

export interface Report {
  machine: MachineInfo;
  scenarios: ScenarioReport[];
}

export function machineInfo(quick: boolean, rounds: number, totalBytesPerSample: number): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: os.platform(),
    arch: os.arch(),
    totalMemoryBytes: os.totalmem(),
    date: new Date().toISOString(),
    quick,
    rounds,
    totalBytesPerSample,
  };
}

const fmt = (n: number): string => n.toFixed(1);
const range = (s: Summary): string => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;

/** The human-readable table. */
export function formatTable(report: Report): string {
  const m = report.machine;
  const head = [
    `machine: ${m.cpus} × ${m.cpuModel}, ${(m.totalMemoryBytes / 2 ** 30).toFixed(0)} GiB, ${m.platform}/${m.arch}, Node ${m.node}`,
    `${m.rounds} rounds (ABBA order), ${m.totalBytesPerSample / 2 ** 20} MiB per sample; MB = 10^6 bytes; median (min–max)`,
    '',
  ];
  const rows = [['scenario', 'unit', 'tunnel (mux)', 'direct (raw ws 64 KiB msgs)', 'ratio']];
  for (const s of report.scenarios) {
    rows.push([
      s.name, s.unit, range(s.detail.tunnel),
      s.detail.direct ? range(s.detail.direct) : '—',
      s.ratio === null ? '—' : s.ratio.toFixed(2),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const table = [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
  const notes = report.scenarios.map((s) => `  ${s.name}: ${s.description}`);
  return [...head, ...table, '', ...notes].join('\n');
}
