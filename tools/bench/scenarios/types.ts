/** Options every scenario gets from the command line. */
export interface BenchOptions {
  /** Bytes moved per sample, summed over all streams. Default 256 MiB, 64 MiB with --quick. */
  totalBytes: number;
  /** Timed rounds; each round takes one sample of each side, order alternating (ABBA). */
  rounds: number;
  /** The sink child process every transfer goes to. */
  sink: SinkAddress;
}

/** Where the sink child process listens (see ../sink.ts). */
export interface SinkAddress {
  /** ws server: `/raw` counts binary messages, `/mux?window=BYTES` runs a mux session that counts stream bytes. */
  wsPort: number;
  /** plain TCP: a mux session (window = sink's --tcp-window) that counts stream bytes. */
  tcpPort: number;
}

/** One side of a comparison, connected and warmed up: each call moves `totalBytes` once and returns the figure. */
export type Measure = () => Promise<number>;

/** A connected scenario: its measures and how to tear it down. */
export interface Rig {
  /** The figure for our tunnel/mux path. */
  tunnel: Measure;
  /** The baseline in the same run (raw ws), or null when there is none. */
  direct: Measure | null;
  close(): Promise<void>;
}

/**
 * A benchmark scenario. `setup` connects everything outside the timed region
 * (and warms it up); the runner then alternates `tunnel` and `direct`.
 */
export interface Scenario {
  /** Stable name, used in the JSON report. */
  name: string;
  /** Unit of the figures, e.g. 'MB/s'. */
  unit: string;
  /** One line for the table. */
  description: string;
  setup(options: BenchOptions): Promise<Rig>;
}
