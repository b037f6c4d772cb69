// Chaos on the real path: SIGKILL the gateway during a `kubectl get -w` and
// during an exec. The runner's command ends with an error (no hang), the
// gateway comes back on the same port, the agents reconnect, and the next
// command works — except a WATCH through `pipeops-tunnel proxy`: tunnel-client
// resumes it from the last resourceVersion once the tunnel is back, so
// kubectl keeps running and sees every change once. There is no gateway on
// the direct path: not applicable there.
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

/** The NAME column of `kubectl get -w` rows (header and the namespace's CA configmap left out). */
function names(lines: string[]): string[] {
  return lines.map((l) => l.split(/\s+/)[0] ?? '').filter((n) => n !== '' && n !== 'NAME' && n !== 'kube-root-ca.crt');
}

export const chaosScenarios: Scenario[] = [
  {
    name: 'chaos: get -w via proxy resumes across a gateway restart',
    group: 'chaos',
    notOn: {
      direct: NO_GATEWAY,
      gateway:
        'kubectl talks to the gateway itself: nothing on the runner side can resume its WATCH (it ends with an error: see "chaos: gateway killed during get -w")',
    },
    compare: false,
    async run(ctx) {
      for (const n of ['before-1', 'before-2']) await ctx.k(['create', 'configmap', n, '-n', ctx.ns]);
      const w = ctx.t.spawnKubectl('chaos-resume-get-w', ['get', 'configmaps', '-n', ctx.ns, '-w']);
      try {
        await w.waitForLine('the listed configmaps', /^before-2\s/, 30_000);
        await ctx.k(['create', 'configmap', 'before-3', '-n', ctx.ns]);
        await w.waitForLine('an event before the outage', /^before-3\s/, 30_000);
        const killedAt = performance.now();
        await ctx.env.tunnel.killGateway();
        // Changes while the tunnel is down, made straight at the API server.
        for (const n of ['during-1', 'during-2', 'during-3']) {
          const r = await ctx.env.cluster.admin(['create', 'configmap', n, '-n', ctx.ns]);
          check(r.code === 0, `creating ${n} during the outage: ${r.stderr}`);
        }
        const recovered = await restartAndRecover(ctx);
        await w.waitForLine('the changes of the outage', /^during-3\s/, 60_000);
        const resumedMs = performance.now() - killedAt;
        await ctx.k(['create', 'configmap', 'after-1', '-n', ctx.ns]);
        await w.waitForLine('an event after the outage', /^after-1\s/, 30_000);
        check(w.alive, `kubectl get -w ended: ${w.tail()}`);
        const seen = names(w.lines);
        const want = ['before-1', 'before-2', 'before-3', 'during-1', 'during-2', 'during-3', 'after-1'];
        check(JSON.stringify(seen) === JSON.stringify(want), `kubectl printed ${JSON.stringify(seen)}, want each once, in order: ${JSON.stringify(want)}`);
        // The proxies write their records in batches (up to 100 ms late), and kubectl may print before the batch is out.
        const resumed = await until(
          'a watch_resumed record in the proxies’ logs',
          async () => [...ctx.env.tunnel.proxies.values()].flatMap((p) => p.proc.records()).find((r) => r.event === 'watch_resumed'),
          10_000,
          50,
        );
        return [
          `kubectl get -w kept running; printed ${seen.join(', ')} (each once, in order)`,
          `the outage's changes arrived ${resumedMs.toFixed(0)} ms after the kill; watch_resumed: attempts ${String(resumed.attempts)}, outage ${String(resumed.outageMs)} ms`,
          recovered,
        ].join('\n');
      } finally {
        await w.stop('SIGKILL', 1_000);
        if (!ctx.env.tunnel.gatewayAlive()) await ctx.env.tunnel.startGateway();
      }
    },
  },
  {
    name: 'chaos: logs -f --timestamps via proxy resumes across a gateway restart',
    group: 'chaos',
    notOn: {
      direct: NO_GATEWAY,
      gateway: 'kubectl talks to the gateway itself: nothing on the runner side can resume its follow',
    },
    compare: false,
    async run(ctx) {
      await ctx.env.pod(ctx.ns, 'resumer');
      const mark = `resume-${ctx.ns}`;
      // Lines written by one appendLog share one timestamp: the resume must tell them apart.
      ctx.env.cluster.appendLog([`${mark} before-1`, `${mark} before-2`]);
      const f = ctx.t.spawnKubectl('chaos-resume-logs-f', ['logs', '-f', '--timestamps', 'resumer', '-n', ctx.ns]);
      try {
        await f.waitForLine('the lines before the outage', (l) => l.endsWith(`${mark} before-2`), 30_000);
        await ctx.env.tunnel.killGateway();
        ctx.env.cluster.appendLog([`${mark} during-1`, `${mark} during-2`]);
        const recovered = await restartAndRecover(ctx);
        await f.waitForLine('the lines of the outage', (l) => l.endsWith(`${mark} during-2`), 60_000);
        ctx.env.cluster.appendLog([`${mark} after-1`]);
        await f.waitForLine('a line after the outage', (l) => l.endsWith(`${mark} after-1`), 30_000);
        check(f.alive, `kubectl logs -f ended: ${f.tail()}`);
        const mine = f.lines.filter((l) => l.includes(mark)).map((l) => l.slice(l.indexOf(mark) + mark.length + 1));
        const want = ['before-1', 'before-2', 'during-1', 'during-2', 'after-1'];
        check(JSON.stringify(mine) === JSON.stringify(want), `kubectl printed ${JSON.stringify(mine)}, want each once, in order: ${JSON.stringify(want)}`);
        // The proxies write their records in batches (up to 100 ms late), and kubectl may print before the batch is out.
        const resumed = await until(
          'a logs_resumed record in the proxies’ logs',
          async () => [...ctx.env.tunnel.proxies.values()].flatMap((p) => p.proc.records()).find((r) => r.event === 'logs_resumed'),
          10_000,
          50,
        );
        return `kubectl logs -f --timestamps kept running; printed ${mine.join(', ')} (each once, in order); resumed from sinceTime ${String(resumed.sinceTime)}\n${recovered}`;
      } finally {
        await f.stop('SIGKILL', 1_000);
        if (!ctx.env.tunnel.gatewayAlive()) await ctx.env.tunnel.startGateway();
      }
    },
  },
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
        if (ctx.t.name === 'proxy') {
          // The proxy (tunnel-client) resumes the WATCH: kubectl does not end, and prints what changed meanwhile.
          const made = await ctx.env.cluster.admin(['create', 'configmap', 'during-outage', '-n', ctx.ns]);
          check(made.code === 0, `creating a configmap during the outage: ${made.stderr}`);
          const recovered = await restartAndRecover(ctx);
          await w.waitForLine('the configmap created during the outage', /^during-outage\s/, 60_000);
          check(w.alive, `kubectl get -w ended although the proxy resumes watches: ${w.tail()}`);
          return `get -w kept running across the restart (${(performance.now() - killedAt).toFixed(0)} ms) and printed the change made during the outage\n${recovered}`;
        }
        // Through the gateway endpoint kubectl holds the connection itself: the kill ends its watch.
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
