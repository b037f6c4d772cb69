// Per-cluster addresses: a TLS connection whose server name (SNI) is
// `<cluster>.<suffix>` is that cluster's, and its request paths are the API
// server's own (`/version`, `/api/v1/…`), with no `/k8s/clusters/{cluster}`
// prefix. kubectl before 1.34 drops the kubeconfig server URL's path for
// `get --raw` (kubernetes/kubernetes#131165); a kubeconfig with
// `server: https://GATEWAY` and `tls-server-name: <cluster>.<suffix>` has no
// path to drop. The name is only sent in the TLS handshake and checked
// against the gateway's certificate (which needs `*.<suffix>`): it never has
// to resolve in DNS.

/**
 * The suffix when none is configured. `.localhost` names are reserved for
 * loopback (RFC 6761): no public CA issues them, so this is a development
 * default, the one the `--dev` certificate covers (`*.clusters.localhost`).
 * Production sets a suffix of its own domain and a certificate for it.
 */
export const DEFAULT_CLUSTER_ADDRESS_SUFFIX = 'clusters.localhost';

/** One DNS label as RFC 1123 allows it in a host name, lower case: 1 to 63 letters, digits and inner hyphens. */
export const DNS_LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Longest host name (RFC 1035 §2.3.4, without the trailing dot). */
const MAX_HOST_NAME = 253;

/** What a TLS server name says about the cluster a connection is for. */
export type AddressedCluster =
  /** `<cluster>.<suffix>` with a cluster name that is a DNS label. */
  | { ok: true; cluster: string; serverName: string }
  /** Ends in `.<suffix>` but what precedes it is not one DNS label: `message` says why. */
  | { ok: false; serverName: string; message: string };

/**
 * Why `suffix` cannot be a cluster address suffix, or undefined when it can:
 * a DNS name of at least two labels (a wildcard certificate one label below
 * a top-level name is refused by clients), short enough to leave room for a
 * 63-character cluster label. `''` (off) is fine.
 */
export function clusterAddressSuffixProblem(suffix: string): string | undefined {
  if (suffix === '') return undefined;
  const labels = suffix.split('.');
  if (labels.length < 2 || !labels.every((l) => DNS_LABEL_RE.test(l)))
    return `must be a lower-case DNS name of at least two labels, such as clusters.gateway.example.com, got ${JSON.stringify(suffix)}`;
  if (suffix.length > MAX_HOST_NAME - 64) return `must be at most ${MAX_HOST_NAME - 64} characters (room for a 63-character cluster label)`;
  return undefined;
}

/**
 * The per-cluster address (TLS server name) of `cluster`: `<cluster>.<suffix>`,
 * or undefined when the cluster's name is not a lower-case DNS label (capitals,
 * dots, underscores, more than 63 characters) or `suffix` is `''` — such a
 * cluster is reached by the path form only.
 */
export function clusterServerName(cluster: string, suffix: string): string | undefined {
  if (suffix === '' || !DNS_LABEL_RE.test(cluster)) return undefined;
  return `${cluster}.${suffix}`;
}

/**
 * The cluster a connection's TLS server name addresses, or undefined when it
 * addresses none: no server name (a client that dialled an IP address sends
 * none), a name not ending in `.<suffix>`, the suffix itself, or `suffix`
 * `''`. Host names compare without regard to case (RFC 4343), so
 * `C1.Clusters.Localhost` is cluster `c1`'s address. A name ending in
 * `.<suffix>` whose first part is not one DNS label is reported, not ignored:
 * the client meant a cluster, and gets a `Status` saying why none matched.
 */
export function addressedCluster(serverName: string | false | null | undefined, suffix: string): AddressedCluster | undefined {
  if (typeof serverName !== 'string' || serverName === '' || suffix === '') return undefined;
  const name = serverName.toLowerCase().replace(/\.$/, '');
  const tail = `.${suffix}`;
  if (!name.endsWith(tail) || name.length === tail.length) return undefined;
  const cluster = name.slice(0, -tail.length);
  if (DNS_LABEL_RE.test(cluster)) return { ok: true, cluster, serverName: name };
  return {
    ok: false,
    serverName: name,
    message:
      `the TLS server name ${JSON.stringify(name)} names no cluster: a cluster address is <cluster>.${suffix} with one DNS label ` +
      `(lower-case letters, digits and inner hyphens, at most 63) as the cluster name; ` +
      `reach other cluster names at /k8s/clusters/<cluster> on the gateway's own name`,
  };
}
