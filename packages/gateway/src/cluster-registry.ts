import type { AgentConnection } from './agent-connection.ts';

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
