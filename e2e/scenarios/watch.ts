// kubectl get -w across creates and deletes; kubectl wait.
import { check, type Scenario } from '../harness/scenario.ts';

export const watchScenarios: Scenario[] = [
  {
    name: 'get -w across creates and deletes',
    group: 'watch/wait',
    async run(ctx) {
      await ctx.k(['create', 'configmap', 'seed', '-n', ctx.ns, '--from-literal=x=0']);
      const w = ctx.t.spawnKubectl('get-w', ['get', 'configmaps', '-n', ctx.ns, '-w', '--output-watch-events']);
      try {
        await w.waitForLine('the seed', /ADDED\s+seed/, 30_000);
        await ctx.k(['create', 'configmap', 'one', '-n', ctx.ns, '--from-literal=x=1']);
        await w.waitForLine('one ADDED', /ADDED\s+one/, 30_000);
        await ctx.k(['patch', 'configmap', 'one', '-n', ctx.ns, '--type=merge', '-p', '{"data":{"x":"11"}}']);
        await w.waitForLine('one MODIFIED', /MODIFIED\s+one\s/, 30_000);
        await ctx.k(['delete', 'configmap', 'seed', '-n', ctx.ns]);
        await w.waitForLine('seed DELETED', /DELETED\s+seed/, 30_000);
        await ctx.k(['create', 'configmap', 'two', '-n', ctx.ns, '--from-literal=x=2']);
        await w.waitForLine('two ADDED', /ADDED\s+two/, 30_000);
        check(w.alive, 'kubectl get -w exited early');
        return w.lines.filter((l) => l.trim() !== '').join('\n');
      } finally {
        await w.stop('SIGINT', 3_000);
      }
    },
  },
  {
    name: 'get -w on pods (status transitions)',
    group: 'watch/wait',
    async run(ctx) {
      const w = ctx.t.spawnKubectl('get-w-pods', ['get', 'pods', '-n', ctx.ns, '-w', '-o', 'custom-columns=NAME:.metadata.name,PHASE:.status.phase']);
      try {
        // (no header before the first pod: kubectl lists first, so a pod created now is seen either way)
        await ctx.env.pod(ctx.ns, 'watched');
        await w.waitForLine('Running', /watched\s+Running/, 60_000);
        await ctx.k(['delete', 'pod', 'watched', '-n', ctx.ns, '--wait=false']);
        await ctx.k(['wait', '--for=delete', 'pod/watched', '-n', ctx.ns, '--timeout=60s'], { timeoutMs: 90_000 });
        // the transcript: distinct lines in order (kwok's status updates may repeat a phase)
        return [...new Set(w.lines.filter((l) => l.trim() !== ''))].join('\n');
      } finally {
        await w.stop('SIGINT', 3_000);
      }
    },
    compare: false,
  },
  {
    name: 'kubectl wait: condition, jsonpath, delete',
    group: 'watch/wait',
    async run(ctx) {
      await ctx.k([
        'run',
        'waiter',
        '-n',
        ctx.ns,
        '--image=example/waiter:1',
        '--restart=Never',
        `--overrides=${JSON.stringify({ spec: { nodeName: ctx.env.cluster.nodeName, automountServiceAccountToken: false } })}`,
      ]);
      const out = [
        await ctx.k(['wait', '--for=condition=Ready', 'pod/waiter', '-n', ctx.ns, '--timeout=60s'], { timeoutMs: 90_000 }),
        await ctx.k(['wait', '--for=jsonpath={.status.phase}=Running', 'pod/waiter', '-n', ctx.ns, '--timeout=60s'], { timeoutMs: 90_000 }),
        await ctx.k(['wait', '--for=condition=Ready', 'pod', '-l', 'run=waiter', '-n', ctx.ns, '--timeout=60s'], { timeoutMs: 90_000 }),
      ];
      const del = ctx.t.spawnKubectl('wait-delete', ['wait', '--for=delete', 'pod/waiter', '-n', ctx.ns, '--timeout=60s']);
      await ctx.k(['delete', 'pod', 'waiter', '-n', ctx.ns, '--wait=false']);
      const code = await del.exited;
      check(code === 0, `wait --for=delete exited ${code}: ${del.tail()}`);
      // (its output depends on whether the pod was already gone when it started: not compared)
      out.push(await ctx.k(['wait', '--for=condition=Ready', 'pod/nothing', '-n', ctx.ns, '--timeout=2s'], { expect: 1 }));
      return out.join('\n');
    },
  },
];
