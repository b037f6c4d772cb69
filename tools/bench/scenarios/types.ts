import type { CostSpec } from '../lib/cost.ts';
import type { FullPath, FullPathOptions } from '../lib/full-path.ts';

/** Options every scenario gets from the command line. */
export interface BenchOptions {
  /** `--quick`: every scenario at reduced size (the whole run in under five minutes). */
  quick: boolean;
  /** Timed rounds; each round takes one sample of each side, order alternating (ABBA). */
  rounds: number;
  /** Bytes per sample of the mux-only scenarios. */
  totalBytes: number;
  /** The sink child process of the mux-only scenarios (started on first use). */
  sink(): Promise<SinkAddress>;
  /**
   * The shared full path (upstream, gateway, agent, tunnel-client, chisel),
   * started on first use; scenarios that change it (kill the gateway, add a
   * latency relay) start their own with {@link BenchOptions.startFullPath}.
   */
  fullPath(): Promise<FullPath>;
  startFullPath(o?: FullPathOptions): Promise<FullPath>;
}

/** Where the sink child process listens (see ../sink.ts). */
export interface SinkAddress {
  /** ws server: `/raw` counts binary messages, `/mux?window=BYTES` runs a mux session that counts stream bytes. */
  wsPort: number;
  /** plain TCP: a mux session (window = sink's --tcp-window) that counts stream bytes. */
  tcpPort: number;
}

/**
 * How a figure is judged. `ratio_at_least`: tunnel / direct ≥ value (or
 * tunnel / peer for a peer target); `ratio_at_most`: tunnel / direct ≤ value
 * (e.g. a latency under load against the same latency without);
 * `added_at_most`: tunnel − direct ≤ value; `at_most` / `at_least`: the
 * tunnel figure alone against value.
 */
export interface Target {
  kind: 'ratio_at_least' | 'ratio_at_most' | 'added_at_most' | 'at_most' | 'at_least';
  value: number;
}

/** One reported figure (one row of the table). */
export interface Metric {
  /** Stable name, used in the JSON report. */
  name: string;
  unit: string;
  description: string;
  target: Target | null;
  /** A target against the peer (e.g. ≥ 3× chisel). */
  peerTarget?: Target;
  /**
   * What the `direct` side of this metric is, when it is not the same client
   * straight to the upstream: e.g. `alone` for a figure under load next to
   * the same figure without the load. Default `direct`.
   */
  baseline?: string;
}

/** The figures one sample produced, by metric name. */
export type Figures = Record<string, number>;

/** One side of a comparison, connected and warmed up: each call takes one sample. */
export type Measure = () => Promise<Figures>;

/** A connected scenario: its measures and how to tear it down. */
export interface Rig {
  /** Our tunnel. */
  tunnel: Measure;
  /** The baseline in the same run, or null when there is none. */
  direct: Measure | null;
  /** The reference peer (chisel), or null. */
  peer: Measure | null;
  /** How each sample is charged for CPU, when the scenario reports its cost; absent otherwise. */
  cost?: CostSpec;
  close(): Promise<void>;
}

/**
 * A benchmark scenario. `setup` connects everything outside the timed region
 * (and warms it up); the runner then alternates tunnel, direct and peer for
 * `rounds` rounds (the scenario's own count, or the command line's).
 */
export interface Scenario {
  /** Stable name, for `--only`. */
  name: string;
  metrics: Metric[];
  /** Rounds this scenario takes (e.g. 1 for a 60 s idle measurement); default the command line's. */
  rounds?: (options: BenchOptions) => number;
  setup(options: BenchOptions): Promise<Rig>;
}
