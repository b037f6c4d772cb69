// The preinstalled kubectl (1.32 on the build machines) against the same API
// server, directly and through the tunnel: client/server skew outside the
// ±1 policy when the server is newer, so it is a separate row. kubectl < 1.34
// drops the server URL's path for `get --raw` (kubernetes/kubectl#1676,
// fixed by kubernetes/kubernetes#131165); the gateway row's kubeconfig is the
// cluster's own address (server https://GATEWAY, tls-server-name
// C.clusters.localhost), which has no path to drop, so `get --raw /version`
// is the same command on every row, with the system kubectl and the built
// 1.33 alike.
import { check, type Scenario } from '../harness/scenario.ts';

export const olderKubectlScenarios: Scenario[] = [
  {
    name: 'system kubectl: get, --raw, exec, port-forward; kubectl 1.33: --raw',
    group: 'kubectl-skew',
    async run(ctx) {
      const bin = ctx.env.bins.systemKubectl;
      check(bin !== undefined, 'no kubectl on the system (/usr/bin/kubectl)');
      const minor = ctx.env.systemKubectlMinor ?? 0;
      await ctx.env.pod(ctx.ns, 'old');
      const out = [
        await ctx.k(['get', 'pods', '-n', ctx.ns, '-o', 'name'], { bin }),
        await ctx.k(['get', '--raw', '/version'], { bin }),
        // The built kubectl (1.33): older than 1.34 as well.
        await ctx.k(['get', '--raw', '/version']),
        await ctx.k(['exec', 'old', '-n', ctx.ns, '--', 'echo', `from-1.${String(minor)}`], { bin }),
      ];
      const pf = ctx.t.spawnKubectl('old-pf', ['port-forward', '-n', ctx.ns, 'pod/old', ':8080'], { bin });
      try {
        await pf.waitForLine('Forwarding', /Forwarding from 127\.0\.0\.1:\d+ -> 8080/, 30_000);
        out.push('port-forward: listening');
      } finally {
        await pf.stop('SIGINT', 3_000);
      }
      return out.join('\n');
    },
  },
];
