import type { Duplex } from 'node:stream';
import type { RunnerLimits } from './runner-limits.ts';

/** The authenticated runner a `/ws/runner` stream belongs to. */
export interface RunnerStreamIdentity {
  /** The runner's id from the tokens file. */
  runnerId: string;
  cluster: string;
  /** The runner's limits (its tokens-file entry over the gateway's defaults). */
  limits: Readonly<RunnerLimits>;
}

/**
 * What the runners' mux endpoint hands each stream of a runner session to:
 * one HTTP/1.1 request per stream, relayed to the cluster's agent (the
 * `/ws/runner` front-end, forward/ws-runner-route.ts). Never throws.
 */
export interface RunnerForwarder {
  stream(runner: Duplex, who: RunnerStreamIdentity): void;
}
