// kubectl get / describe on built-in kinds (table, -o json, -o yaml),
// --chunk-size paging, protobuf, and --raw on /version, /openapi/v3 and
// discovery.
import { check, type Scenario, type Ctx } from '../harness/scenario.ts';

/** A few objects to read: two pods on the kwok node, a ConfigMap, a Service, a Secret. */
async function seed(ctx: Ctx): Promise<void> {
  await ctx.env.pod(ctx.ns, 'web-0');
  await ctx.env.pod(ctx.ns, 'web-1');
  await ctx.k(['apply', '-n', ctx.ns, '-f', '-'], {
    stdin: JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'settings', labels: { tier: 'e2e' } },
          data: { mode: 'fast', 'multi.txt': 'line 1\nline 2\n' },
        },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web-0' }, ports: [{ port: 80, targetPort: 8080 }] } },
        { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds' }, stringData: { user: 'e2e' } },
      ],
    }),
  });
}

export const readScenarios: Scenario[] = [
  {
    name: 'get: table output',
    group: 'get/describe',
    async run(ctx) {
      await seed(ctx);
      const out = [
        await ctx.k(['get', 'pods', '-n', ctx.ns]),
        await ctx.k(['get', 'pods', '-n', ctx.ns, '-o', 'wide']),
        await ctx.k(['get', 'configmaps,services,secrets', '-n', ctx.ns, '--show-labels']),
        await ctx.k(['get', 'nodes']),
        await ctx.k(['get', 'pods', '-n', ctx.ns, '-l', 'app=web-1', '-o', 'name']),
      ].join('\n');
      check(/web-0\s+1\/1\s+Running/.test(out), `pods not shown Running:\n${out}`);
      return out;
    },
  },
  {
    name: 'get: -o json and -o yaml',
    group: 'get/describe',
    async run(ctx) {
      await seed(ctx);
      const json = await ctx.k(['get', 'pod', 'web-0', '-n', ctx.ns, '-o', 'json']);
      const pod = JSON.parse(json) as { status: { phase: string } };
      check(pod.status.phase === 'Running', `phase ${pod.status.phase}`);
      return [
        json,
        await ctx.k(['get', 'configmap', 'settings', '-n', ctx.ns, '-o', 'yaml']),
        await ctx.k(['get', 'pods,services', '-n', ctx.ns, '-o', 'yaml']),
        await ctx.k(['get', 'pods', '-n', ctx.ns, '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\\n"}{end}']),
      ].join('\n');
    },
  },
  {
    name: 'describe: pod, service, namespace',
    group: 'get/describe',
    async run(ctx) {
      await seed(ctx);
      const out = [
        await ctx.k(['describe', 'pod', 'web-0', '-n', ctx.ns]),
        await ctx.k(['describe', 'service', 'web', '-n', ctx.ns]),
        await ctx.k(['describe', 'namespace', ctx.ns]),
        await ctx.k(['describe', 'node', ctx.env.cluster.nodeName]),
      ].join('\n');
      check(out.includes('Status:           Running') || /Status:\s+Running/.test(out), 'describe pod has no Running status');
      return out;
    },
    // describe node lists every pod on the node (all targets' namespaces) and live lease/heartbeat times.
    normalize: (s) =>
      s
        .replace(/(Non-terminated Pods:[\s\S]*?)(?=\nAllocated resources:)/, 'Non-terminated Pods: <varies>')
        .replace(/Events:[\s\S]*?(?=\n\S|\n*$)/g, 'Events: <varies>'),
  },
  {
    name: 'get: --chunk-size paging',
    group: 'get/describe',
    async run(ctx) {
      const items = Array.from({ length: 7 }, (_, i) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `page-${i}` }, data: { i: String(i) } }));
      await ctx.k(['apply', '-n', ctx.ns, '-f', '-'], { stdin: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
      const r = await ctx.t.kubectl(['get', 'configmaps', '-n', ctx.ns, '--chunk-size=2', '-v=6']);
      check(r.code === 0, r.stderr);
      // -v=6 logs one line per request: the list must have taken 4 pages (7 items, 2 per page).
      const pages = r.stderr.split('\n').filter((l) => /GET/.test(l) && /configmaps\?/.test(l) && /limit=2/.test(l));
      // (8 with kube-root-ca.crt when kube-controller-manager publishes it)
      check(pages.length === 4, `expected 4 paged requests, saw ${pages.length}:\n${r.stderr}`);
      const withContinue = pages.filter((l) => /continue=/.test(l)).length;
      check(withContinue === 3, `expected 3 requests with continue=, saw ${withContinue}`);
      return `${r.stdout}\npages=${pages.length} continued=${withContinue}\n${await ctx.k(['get', 'configmaps', '-n', ctx.ns, '--chunk-size=3', '-o', 'name'])}`;
    },
  },
  {
    name: 'protobuf: application/vnd.kubernetes.protobuf',
    group: 'get/describe',
    async run(ctx) {
      await ctx.k(['create', 'configmap', 'proto', '-n', ctx.ns, '--from-literal=key=protobuf-value-1234']);
      const one = await ctx.t.http(`/api/v1/namespaces/${ctx.ns}/configmaps/proto`, { headers: { accept: 'application/vnd.kubernetes.protobuf' } });
      check(one.status === 200, `status ${one.status}: ${one.body.toString()}`);
      const magic = one.body.subarray(0, 4).toString('latin1');
      check(magic === 'k8s\0', `no protobuf magic: ${JSON.stringify(magic)}`);
      check(one.body.includes(Buffer.from('protobuf-value-1234')), 'value missing from the protobuf body');
      const list = await ctx.t.http(`/api/v1/namespaces/${ctx.ns}/configmaps`, {
        headers: { accept: 'application/vnd.kubernetes.protobuf, application/json' },
      });
      check(list.status === 200 && list.body.subarray(0, 4).toString('latin1') === 'k8s\0', 'protobuf list');
      // a protobuf request body too: the object as the server encoded it, posted back under a new name
      const body = Buffer.from(one.body.toString('latin1').replace('proto', 'prot2'), 'latin1');
      const created = await ctx.t.http(`/api/v1/namespaces/${ctx.ns}/configmaps`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/vnd.kubernetes.protobuf', accept: 'application/json' },
      });
      // The uid/resourceVersion copied from the original make the server reject or accept it
      // identically on every path; the status and reason are what is compared.
      const reason = created.status >= 300 ? (JSON.parse(created.body.toString()) as { reason?: string }).reason : 'Created';
      // kubectl itself asks for protobuf for built-in kinds (-v=8 shows the Accept header).
      const v8 = await ctx.t.kubectl(['get', 'configmap', 'proto', '-n', ctx.ns, '-v=8']);
      const asksProto = /Accept.*application\/vnd\.kubernetes\.protobuf/.test(v8.stderr);
      return [
        `get: ${one.status} ${one.headers['content-type']} magic=ok bytes~${one.body.length > 100}`,
        `list: ${list.status} ${list.headers['content-type']}`,
        `post protobuf: ${created.status} ${reason}`,
        `kubectl asks protobuf: ${asksProto}`,
        v8.stdout,
      ].join('\n');
    },
  },
  {
    name: 'get --raw: /version, discovery, /openapi/v3',
    group: 'get/describe',
    async run(ctx) {
      const raw = (p: string) => ctx.k(['get', '--raw', p]);
      const version = JSON.parse(await raw('/version')) as { gitVersion: string; major: string; minor: string };
      check(/^v1\.\d+\.\d+/.test(version.gitVersion), `gitVersion ${version.gitVersion}`);
      const api = await raw('/api');
      const apis = JSON.parse(await raw('/apis')) as { groups: unknown[] };
      check(apis.groups.length > 10, 'few API groups');
      const v3 = JSON.parse(await raw('/openapi/v3')) as { paths: Record<string, { serverRelativeURL: string }> };
      const core = v3.paths['api/v1'];
      check(core !== undefined, 'no api/v1 in /openapi/v3');
      const coreSpec = JSON.parse(await raw(core.serverRelativeURL.replace(/^/, ''))) as { openapi: string; components: { schemas: Record<string, unknown> } };
      check(coreSpec.components.schemas['io.k8s.api.core.v1.Pod'] !== undefined, 'no Pod schema');
      const resources = await ctx.k(['api-resources', '--sort-by=name']);
      const versions = await ctx.k(['api-versions']);
      const explain = await ctx.k(['explain', 'pod.spec.nodeName']);
      return [
        JSON.stringify(version),
        api,
        JSON.stringify(apis),
        JSON.stringify(Object.keys(v3.paths).sort()),
        `openapi ${coreSpec.openapi}, ${Object.keys(coreSpec.components.schemas).length} schemas`,
        resources,
        versions,
        explain,
      ].join('\n');
    },
  },
];
