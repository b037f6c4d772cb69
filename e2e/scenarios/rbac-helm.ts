// RBAC: an agent whose service account may only read (bound to `view`) gets
// the API server's 403 passed through unchanged; the full agent's
// permissions as the API server reports them. helm: install, upgrade,
// rollback, uninstall of e2e/chart (a ConfigMap and a pod on the kwok node).
import { join } from 'node:path';
import { E2E_DIR } from '../harness/paths.ts';
import { check, type Scenario } from '../harness/scenario.ts';

const CHART = join(E2E_DIR, 'chart');

export const rbacScenarios: Scenario[] = [
  {
    name: 'RBAC: read-only agent gets the 403 unchanged',
    group: 'rbac',
    cluster: 'readonly',
    async run(ctx) {
      await ctx.env.cluster.admin(['create', 'configmap', 'visible', '-n', ctx.ns, '--from-literal=x=1']);
      const out = [
        await ctx.k(['get', 'configmaps', '-n', ctx.ns]),
        await ctx.k(['create', 'configmap', 'denied', '-n', ctx.ns, '--from-literal=x=1'], { expect: 1 }),
        await ctx.k(['delete', 'configmap', 'visible', '-n', ctx.ns], { expect: 1 }),
        await ctx.k(['get', 'secrets', '-n', ctx.ns], { expect: 1 }),
        await ctx.k(['auth', 'can-i', 'create', 'configmaps', '-n', ctx.ns], { expect: 1 }),
        await ctx.k(['auth', 'can-i', 'list', 'pods', '-n', ctx.ns]),
        await ctx.k(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']),
      ];
      check(
        /forbidden/i.test(out[1] ?? '') && (out[1] ?? '').includes('system:serviceaccount:pipeops-system:pipeops-tunnel-agent-readonly'),
        `not the API server's 403: ${out[1]}`,
      );
      const raw = await ctx.t.http(`/api/v1/namespaces/${ctx.ns}/configmaps`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'raw' } }),
      });
      check(raw.status === 403, `status ${raw.status}`);
      out.push(`POST → ${raw.status} ${raw.headers['content-type']} ${raw.body.toString()}`);
      return out.join('\n');
    },
  },
  {
    name: 'RBAC: full agent permissions (auth can-i)',
    group: 'rbac',
    async run(ctx) {
      return [
        await ctx.k(['auth', 'whoami']),
        await ctx.k(['auth', 'can-i', 'create', 'deployments', '-n', ctx.ns]),
        await ctx.k(['auth', 'can-i', 'create', 'pods/exec', '-n', ctx.ns]),
        await ctx.k(['auth', 'can-i', 'escalate', 'clusterroles'], { expect: 1 }),
        await ctx.k(['auth', 'can-i', '--list', '-n', ctx.ns]),
      ].join('\n');
    },
  },
];

export const helmScenarios: Scenario[] = [
  {
    name: 'helm: install, upgrade, rollback, uninstall',
    group: 'helm',
    async run(ctx) {
      const h = async (args: string[], expect = 0) => {
        const r = await ctx.t.helm([...args, '-n', ctx.ns]);
        check(r.code === expect, `helm ${args.join(' ')} → ${r.code}: ${r.stderr}`);
        return r.stdout;
      };
      const cm = () => ctx.k(['get', 'configmap', 'rel-config', '-n', ctx.ns, '-o', 'jsonpath={.data}']);
      const out = [
        await h(['install', 'rel', CHART, '--wait', '--timeout=60s']),
        await cm(),
        await h(['upgrade', 'rel', CHART, '--set', 'message=upgraded', '--set', 'replicas=2']),
        await cm(),
        await h(['rollback', 'rel', '1']),
        await cm(),
        await h(['history', 'rel']),
        await h(['list']),
        await h(['get', 'values', 'rel', '--all']),
        await h(['status', 'rel']),
        await h(['uninstall', 'rel', '--wait']),
        await ctx.k(['get', 'configmaps,pods,secrets', '-n', ctx.ns, '-o', 'name']),
      ].join('\n---\n');
      check(out.includes('"message":"upgraded"') && out.includes('release "rel" uninstalled'), out);
      return out;
    },
    normalize: (s) => s.replace(/(LAST DEPLOYED:|UPDATED\s*)[^\n]*/g, '$1 <time>').replace(/\w{3} \w{3}\s+\d+ \d{2}:\d{2}:\d{2} \d{4}/g, '<time>'),
  },
];
