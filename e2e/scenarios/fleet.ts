// The gateway as a fleet against the real kube-apiserver: three replicas on
// Redis behind HAProxy, the agent dialing the load balancer. kubectl get,
// get -w and exec through a replica that does not hold the tunnel, then a
// rolling restart of every replica while kubectl runs in a loop through the
// load balancer: not one run may fail. Runs on the gateway target only (the
// fleet has its own gateways; direct has none, and the proxy target's
// tunnel-client is proven against the fleet in packages/cli/test/ha.test.ts).
import { join } from 'node:path';
import { check, type Scenario } from '../harness/scenario.ts';
import { startFleet } from '../harness/fleet.ts';
import { cleanEnv, runCommand } from '../harness/run-command.ts';
import { start, until } from '../harness/proc.ts';
import { writeKubeconfig } from '../harness/tunnel.ts';

const CLUSTER = 'e2e-fleet';

export const fleetScenarios: Scenario[] = [
  {
    name: 'fleet: get, get -w and exec through a replica without the tunnel; rolling restart under kubectl',
    group: 'ha',
    compare: false,
    notOn: {
      direct: 'no gateway on the direct path',
      proxy: 'the fleet is reached through its own load balancer (tunnel-client against a fleet: packages/cli/test/ha.test.ts)',
    },
    async run(ctx) {
      const { env } = ctx;
      const token = await env.cluster.admin(['create', 'token', 'pipeops-tunnel-agent', '-n', 'pipeops-system', '--duration=1h']);
      check(token.code === 0, `kubectl create token: ${token.stderr}`);
      const agentKubeconfig = writeKubeconfig(join(env.runDir, 'fleet-agent.kubeconfig'), {
        server: env.cluster.url,
        token: token.stdout.trim(),
        caData: env.cluster.caData,
      });
      const fleet = await startFleet({ dir: env.runDir, logDir: env.logDir, cluster: CLUSTER, agentKubeconfig, replicas: 3 });
      const kubectl = (kubeconfig: string, args: string[], o: { timeoutMs?: number } = {}) =>
        runCommand(env.bins.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], { home: env.home, timeoutMs: o.timeoutMs ?? 60_000 });
      const out: string[] = [];
      try {
        const held = await fleet.owner();
        const other = fleet.replicaUrls.find((u) => u !== held);
        check(other !== undefined, 'a replica without the tunnel');
        const viaOther = fleet.runnerKubeconfig(other);
        const seed = await kubectl(viaOther, ['create', 'configmap', 'seed', '-n', ctx.ns, '--from-literal=x=0']);
        check(seed.code === 0, `create through the replica without the tunnel: ${seed.stderr}`);
        out.push(`tunnel on ${held}; kubectl through ${other}`);

        const w = start('fleet-get-w', env.bins.kubectl, [`--kubeconfig=${viaOther}`, 'get', 'configmaps', '-n', ctx.ns, '-w', '--output-watch-events'], {
          logDir: env.logDir,
          env: cleanEnv(env.home),
        });
        try {
          await w.waitForLine('the seed', /ADDED\s+seed/, 30_000);
          const made = await kubectl(viaOther, ['create', 'configmap', 'watched', '-n', ctx.ns, '--from-literal=x=1']);
          check(made.code === 0, made.stderr);
          await w.waitForLine('watched ADDED', /ADDED\s+watched/, 30_000);
          out.push('get -w: ADDED seed, ADDED watched');
        } finally {
          await w.stop('SIGINT', 3_000);
        }

        await env.pod(ctx.ns, 'fleet-exec');
        const ex = await kubectl(viaOther, ['exec', 'fleet-exec', '-n', ctx.ns, '--', 'echo', 'through-the-fleet']);
        check(ex.code === 0 && ex.stdout === 'through-the-fleet\n', `exec through the replica without the tunnel: ${ex.code} ${ex.stderr}`);
        out.push('exec: through-the-fleet');

        const viaLb = fleet.runnerKubeconfig(fleet.lbUrl);
        const runs: Array<{ code: number; stderr: string }> = [];
        let rolling = true;
        const loop = (async () => {
          while (rolling) {
            const r = await kubectl(viaLb, ['get', 'configmaps', '-n', ctx.ns, '-o', 'name'], { timeoutMs: 30_000 });
            runs.push({ code: r.code === 0 && r.stdout.includes('configmap/watched') ? 0 : r.code === 0 ? -2 : r.code, stderr: r.stderr.trim() });
          }
        })();
        const codes: Array<number | null> = [];
        for (let i = 0; i < fleet.replicaUrls.length; i++) codes.push(await fleet.roll(i));
        const after = runs.length;
        await until('kubectl runs after the roll', async () => (runs.length >= after + 2 ? true : undefined), 60_000, 50);
        rolling = false;
        await loop;
        check(
          codes.every((c) => c === 0),
          `every replica drained and exited 0: ${codes.join(', ')}`,
        );
        const failed = runs.filter((r) => r.code !== 0);
        check(
          failed.length === 0,
          `${failed.length} of ${runs.length} kubectl runs failed during the rolling restart: ${failed.map((f) => `${f.code} ${f.stderr}`).join(' / ')}`,
        );
        out.push(
          `rolling restart of ${fleet.replicaUrls.length} replicas: ${runs.length} kubectl runs through the load balancer, none failed; tunnel now on ${await fleet.owner()}`,
        );
        return out.join('\n');
      } finally {
        await fleet.close();
      }
    },
  },
];
