// Chaos on the real path: SIGKILL the gateway during a `kubectl get -w` and
// during an exec. The runner's command ends with an error (no hang), the
// gateway comes back on the same port, the agents reconnect, and the next
// command works. There is no gateway on the direct path: not applicable there.
import { check, type Ctx, type Scenario } from '../harness/scenario.ts';
import { until } from '../harness/proc.ts';

const NO_GATEWAY = 'no gateway on the direct path: nothing to kill';

async function restartAndRecover(ctx: Ctx): Promise<string> {
  const t0 = performance.now();
  await ctx.env.tunnel.startGateway();
  await ctx.env.tunnel.agentsReady(30_000);
  const agentMs = performance.now() - t0;
  // every `pipeops-tunnel proxy` (tunnel-client) re-dials on its own, with backoff: bounded wait
  const proxiesMs: string[] = [];
  for (const [cluster, p] of ctx.env.tunnel.proxies) {
    await until(`proxy ${cluster} reconnected`, async () => ((await fetch(`${p.url}/version`)).status === 200 ? true : undefined), 30_000, 100);
    proxiesMs.push(`${cluster} ${(performance.now() - t0).toFixed(0)} ms`);
  }
  let attempts = 0;
  await until(
    'the next command through the tunnel',
    async () => {
      attempts += 1;
      const r = await ctx.t.kubectl(['get', 'configmaps', '-n', ctx.ns, '-o', 'name'], { timeoutMs: 15_000 });
      return r.code === 0 ? true : undefined;
    },
    30_000,
    200,
  );
  return `recovered: agents ready ${agentMs.toFixed(0)} ms after the restart, proxies answering (${proxiesMs.join(', ')}); next command ok after ${attempts} attempt(s)`;
}

export const chaosScenarios: Scenario[] = [
  {
    name: 'chaos: gateway killed during get -w',
    group: 'chaos',
    notOn: { direct: NO_GATEWAY },
    compare: false,
    async run(ctx) {
      await ctx.k(['create', 'configmap', 'seed', '-n', ctx.ns, '--from-literal=x=0']);
      const w = ctx.t.spawnKubectl('chaos-get-w', ['get', 'configmaps', '-n', ctx.ns, '-w']);
      try {
        await w.waitForLine('the seed', /^seed\s/, 30_000);
        const killedAt = performance.now();
        await ctx.env.tunnel.killGateway();
        const code = await Promise.race([w.exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), 30_000).unref())]);
        check(code !== 'hang', 'kubectl get -w still running 30 s after the gateway died');
        const ms = performance.now() - killedAt;
        const err = w.lines.filter((l) => !/^(NAME|seed|kube-root-ca\.crt)\s/.test(l) && l.trim() !== '').join(' / ');
        const recovered = await restartAndRecover(ctx);
        return `get -w ended ${ms.toFixed(0)} ms after the kill, exit ${code}${err ? `: ${err}` : ' (no message)'}\n${recovered}`;
      } finally {
        await w.stop('SIGKILL', 1_000);
        if (!ctx.env.tunnel.gatewayAlive()) await ctx.env.tunnel.startGateway();
      }
    },
  },
  {
    name: 'chaos: gateway killed during exec',
    group: 'chaos',
    notOn: { direct: NO_GATEWAY },
    compare: false,
    async run(ctx) {
      await ctx.env.pod(ctx.ns, 'chaos');
      const x = ctx.t.spawnKubectl('chaos-exec', ['exec', '-i', 'chaos', '-n', ctx.ns, '--', 'sh', '-c', 'echo started; cat'], { stdinPipe: true });
      try {
        await x.waitForLine('started', /^started$/, 30_000);
        x.child.stdin?.write('ping-before-kill\n');
        await x.waitForLine('the echo', /^ping-before-kill$/, 30_000);
        const killedAt = performance.now();
        await ctx.env.tunnel.killGateway();
        const code = await Promise.race([x.exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), 30_000).unref())]);
        check(code !== 'hang', 'kubectl exec still running 30 s after the gateway died');
        check(code !== 0, 'kubectl exec exited 0 although its session was cut');
        const ms = performance.now() - killedAt;
        const err = x.lines.filter((l) => !/^(started|ping-before-kill)$/.test(l) && l.trim() !== '').join(' / ');
        const recovered = await restartAndRecover(ctx);
        const next = await ctx.t.kubectl(['exec', 'chaos', '-n', ctx.ns, '--', 'echo', 'after'], { timeoutMs: 30_000 });
        check(next.code === 0 && next.stdout === 'after\n', `exec after recovery: ${next.code} ${next.stderr}`);
        return `exec ended ${ms.toFixed(0)} ms after the kill, exit ${code}: ${err || '(no message)'}\n${recovered}\nnext exec: ok`;
      } finally {
        await x.stop('SIGKILL', 1_000);
        if (!ctx.env.tunnel.gatewayAlive()) await ctx.env.tunnel.startGateway();
      }
    },
  },
];
