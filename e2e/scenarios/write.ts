// kubectl apply (client-side and --server-side), create, patch (json, merge,
// strategic), label, delete --wait, a CRD and a custom resource, and the
// project's own manifest validated with --dry-run=server.
import { join } from 'node:path';
import { REPO_DIR } from '../harness/paths.ts';
import { check, type Scenario } from '../harness/scenario.ts';
import { stableYaml } from '../harness/normalize.ts';

const deployment = (replicas: number, image: string) =>
  JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'api', labels: { app: 'api' } },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'api' } },
      template: { metadata: { labels: { app: 'api' } }, spec: { containers: [{ name: 'api', image, ports: [{ containerPort: 8080 }] }] } },
    },
  });

export const writeScenarios: Scenario[] = [
  {
    name: 'apply: client-side',
    group: 'apply/create',
    async run(ctx) {
      const out = [
        await ctx.k(['apply', '-n', ctx.ns, '-f', '-'], { stdin: deployment(1, 'example/api:1') }),
        await ctx.k(['apply', '-n', ctx.ns, '-f', '-'], { stdin: deployment(1, 'example/api:1') }),
        await ctx.k(['apply', '-n', ctx.ns, '-f', '-'], { stdin: deployment(2, 'example/api:2') }),
        await ctx.k(['diff', '-n', ctx.ns, '-f', '-'], { stdin: deployment(3, 'example/api:2'), expect: 1 }),
        stableYaml(await ctx.k(['get', 'deployment', 'api', '-n', ctx.ns, '-o', 'yaml'])),
      ].join('\n');
      check(
        out.includes('deployment.apps/api created') && out.includes('deployment.apps/api unchanged') && out.includes('deployment.apps/api configured'),
        out,
      );
      check(out.includes('kubectl.kubernetes.io/last-applied-configuration'), 'no last-applied annotation');
      return out.replace(/(diff -u -N )\S+ \S+/g, '$1<tmp> <tmp>').replace(/\/tmp\/\S+/g, '<tmp>');
    },
  },
  {
    name: 'apply: --server-side',
    group: 'apply/create',
    async run(ctx) {
      const out = [
        await ctx.k(['apply', '--server-side', '--field-manager=e2e', '-n', ctx.ns, '-f', '-'], { stdin: deployment(1, 'example/api:1') }),
        await ctx.k(['apply', '--server-side', '--field-manager=e2e', '-n', ctx.ns, '-f', '-'], { stdin: deployment(2, 'example/api:1') }),
        // a second manager taking a field: conflict, then --force-conflicts
        await ctx.k(['apply', '--server-side', '--field-manager=other', '-n', ctx.ns, '-f', '-'], { stdin: deployment(3, 'example/api:1'), expect: 1 }),
        await ctx.k(['apply', '--server-side', '--field-manager=other', '--force-conflicts', '-n', ctx.ns, '-f', '-'], {
          stdin: deployment(3, 'example/api:1'),
        }),
        stableYaml(await ctx.k(['get', 'deployment', 'api', '-n', ctx.ns, '-o', 'yaml', '--show-managed-fields'])),
      ].join('\n');
      check(/conflict/i.test(out) && out.includes('serverside-applied'), out);
      return out;
    },
  },
  {
    name: 'create: configmap, secret, deployment, job',
    group: 'apply/create',
    async run(ctx) {
      return [
        await ctx.k(['create', 'configmap', 'cfg', '-n', ctx.ns, '--from-literal=a=1', '--from-literal=b=two']),
        await ctx.k(['create', 'secret', 'generic', 'sec', '-n', ctx.ns, '--from-literal=password=hunter2']),
        await ctx.k(['create', 'deployment', 'dep', '-n', ctx.ns, '--image=example/dep:1', '--replicas=2']),
        await ctx.k(['create', 'job', 'job1', '-n', ctx.ns, '--image=example/job:1']),
        await ctx.k(['create', 'configmap', 'cfg', '-n', ctx.ns, '--from-literal=a=1'], { expect: 1 }),
        await ctx.k(['create', 'serviceaccount', 'robot', '-n', ctx.ns, '-o', 'yaml']),
        await ctx.k(['get', 'configmap', 'cfg', '-n', ctx.ns, '-o', 'jsonpath={.data}']),
      ].join('\n');
    },
  },
  {
    name: 'patch: strategic, merge, json',
    group: 'apply/create',
    async run(ctx) {
      await ctx.k(['apply', '-n', ctx.ns, '-f', '-'], { stdin: deployment(1, 'example/api:1') });
      const out = [
        // strategic merge: containers merged by name (the port list kept, an env added)
        await ctx.k([
          'patch',
          'deployment',
          'api',
          '-n',
          ctx.ns,
          '--type=strategic',
          '-p',
          JSON.stringify({ spec: { template: { spec: { containers: [{ name: 'api', env: [{ name: 'MODE', value: 'e2e' }] }] } } } }),
        ]),
        // JSON merge patch: replaces the whole labels map entry
        await ctx.k([
          'patch',
          'deployment',
          'api',
          '-n',
          ctx.ns,
          '--type=merge',
          '-p',
          JSON.stringify({ metadata: { labels: { patched: 'merge' } }, spec: { replicas: 4 } }),
        ]),
        // JSON patch (RFC 6902), including a test op that fails
        await ctx.k([
          'patch',
          'deployment',
          'api',
          '-n',
          ctx.ns,
          '--type=json',
          '-p',
          JSON.stringify([
            { op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'example/api:3' },
            { op: 'add', path: '/metadata/annotations', value: { note: 'json' } },
          ]),
        ]),
        await ctx.k(['patch', 'deployment', 'api', '-n', ctx.ns, '--type=json', '-p', JSON.stringify([{ op: 'test', path: '/spec/replicas', value: 99 }])], {
          expect: 1,
        }),
        // an empty merge patch: kubectl prints "(no change)" only when the object it read before
        // equals the one the patch returns, which races with the deployment controller's status
        // writes on either path, so that suffix is not part of the comparison
        (await ctx.k(['patch', 'deployment', 'api', '-n', ctx.ns, '--type=merge', '-p', '{}'])).replace(' (no change)', ''),
        await ctx.k([
          'get',
          'deployment',
          'api',
          '-n',
          ctx.ns,
          '-o',
          'jsonpath={.spec.replicas} {.metadata.labels} {.metadata.annotations.note} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env} {.spec.template.spec.containers[0].ports}',
        ]),
      ].join('\n');
      check(out.includes('4 ') && out.includes('example/api:3') && out.includes('MODE') && out.includes('8080'), out);
      return out;
    },
  },
  {
    name: 'label and annotate',
    group: 'apply/create',
    async run(ctx) {
      await ctx.k(['create', 'configmap', 'lab', '-n', ctx.ns, '--from-literal=x=y']);
      return [
        await ctx.k(['label', 'configmap', 'lab', '-n', ctx.ns, 'color=blue', 'size=s']),
        await ctx.k(['label', 'configmap', 'lab', '-n', ctx.ns, 'color=red'], { expect: 1 }),
        await ctx.k(['label', 'configmap', 'lab', '-n', ctx.ns, 'color=red', '--overwrite']),
        await ctx.k(['label', 'configmap', 'lab', '-n', ctx.ns, 'size-']),
        await ctx.k(['annotate', 'configmap', 'lab', '-n', ctx.ns, 'owner=e2e']),
        await ctx.k(['get', 'configmap', '-n', ctx.ns, '-l', 'color=red', '--show-labels']),
      ].join('\n');
    },
  },
  {
    name: 'delete --wait',
    group: 'apply/create',
    async run(ctx) {
      await ctx.env.pod(ctx.ns, 'doomed');
      await ctx.k(['create', 'configmap', 'gone', '-n', ctx.ns, '--from-literal=x=y']);
      const out = [
        await ctx.k(['delete', 'pod', 'doomed', '-n', ctx.ns, '--wait=true', '--timeout=60s'], { timeoutMs: 90_000 }),
        await ctx.k(['delete', 'configmap', 'gone', '-n', ctx.ns, '--wait']),
        await ctx.k(['delete', 'configmap', 'gone', '-n', ctx.ns], { expect: 1 }),
        await ctx.k(['delete', 'configmap', 'gone', '-n', ctx.ns, '--ignore-not-found']),
        await ctx.k(['get', 'pods,configmaps', '-n', ctx.ns, '-o', 'name']),
      ].join('\n');
      check(out.includes('pod "doomed" deleted'), out);
      return out;
    },
  },
  {
    name: 'CRD and a custom resource',
    group: 'apply/create',
    async run(ctx) {
      const group = `${ctx.ns}.e2e.example.com`;
      const crd = {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: `widgets.${group}` },
        spec: {
          group,
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget', shortNames: ['wdg'] },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              subresources: { status: {} },
              additionalPrinterColumns: [
                { name: 'Size', type: 'integer', jsonPath: '.spec.size' },
                { name: 'Color', type: 'string', jsonPath: '.spec.color' },
              ],
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: {
                    spec: { type: 'object', properties: { size: { type: 'integer', minimum: 1 }, color: { type: 'string' } } },
                    status: { type: 'object', properties: { ok: { type: 'boolean' } } },
                  },
                },
              },
            },
          ],
        },
      };
      const cr = (size: number) => JSON.stringify({ apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { size, color: 'green' } });
      const out = [
        await ctx.k(['apply', '-f', '-'], { stdin: JSON.stringify(crd) }),
        await ctx.k(['wait', '--for=condition=Established', `crd/widgets.${group}`, '--timeout=60s']),
      ];
      // discovery of a group created a moment ago: kubectl refreshes its cache on a miss
      out.push(await ctx.k(['apply', '-n', ctx.ns, '-f', '-'], { stdin: cr(3) }));
      out.push(await ctx.k(['apply', '-n', ctx.ns, '-f', '-'], { stdin: cr(0), expect: 1 }));
      out.push(await ctx.k(['get', `widgets.${group}`, '-n', ctx.ns]));
      out.push(await ctx.k(['patch', `widgets.${group}`, 'w1', '-n', ctx.ns, '--subresource=status', '--type=merge', '-p', '{"status":{"ok":true}}']));
      out.push(await ctx.k(['get', `widget.${group}`, 'w1', '-n', ctx.ns, '-o', 'yaml']));
      out.push(await ctx.k(['delete', `widgets.${group}`, 'w1', '-n', ctx.ns, '--wait']));
      out.push(await ctx.k(['delete', 'crd', `widgets.${group}`, '--wait', '--timeout=60s'], { timeoutMs: 90_000 }));
      return out.join('\n');
    },
  },
  {
    name: 'deploy/kubernetes/agent.yaml --dry-run=server',
    group: 'apply/create',
    async run(ctx) {
      const file = join(REPO_DIR, 'deploy', 'kubernetes', 'agent.yaml');
      const out = await ctx.k(['apply', '--dry-run=server', '-f', file]);
      const ssa = await ctx.k(['apply', '--server-side', '--dry-run=server', '--field-manager=e2e-validate', '-f', file]);
      check(out.includes('(server dry run)') && ssa.includes('(server dry run)'), out);
      return `${out}\n${ssa}`;
    },
  },
];
