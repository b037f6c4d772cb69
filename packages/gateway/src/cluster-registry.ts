import type { AgentConnection } from './agent-connection.ts';

/** What `GET /v1/clusters` lists for one connected cluster. Times are ISO 8601 strings. */
export interface ClusterInfo {
  cluster: string;
  agentId: string;
  name: string;
  version: string;
  labels: Record<string, string>;
  connectedAt: string;
  lastStatus: unknown;
  lastStatusAt: string | null;
  /** Last session round-trip time (mux ping), in ms, or null before the first measurement. */
  rttMs: number | null;
  /** Data streams the gateway has open to this agent. */
  streamsActive: number;
}

/** The live agent session of each cluster: at most one per cluster. */
export class ClusterRegistry {
  readonly #byCluster = new Map<string, AgentConnection>();

  /** Makes `conn` its cluster's session; returns the session it replaces, if any. */
  set(conn: AgentConnection): AgentConnection | undefined {
    const previous = this.#byCluster.get(conn.cluster);
    this.#byCluster.set(conn.cluster, conn);
    return previous === conn ? undefined : previous;
  }

  /** Removes `conn` if it is still its cluster's session; true when it was. */
  delete(conn: AgentConnection): boolean {
    if (this.#byCluster.get(conn.cluster) !== conn) return false;
    this.#byCluster.delete(conn.cluster);
    return true;
  }

  get(cluster: string): AgentConnection | undefined {
    return this.#byCluster.get(cluster);
  }

  all(): AgentConnection[] {
    return [...this.#byCluster.values()];
  }

  get size(): number {
    return this.#byCluster.size;
  }
}
