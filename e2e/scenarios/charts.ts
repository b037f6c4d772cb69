// The Helm charts of deploy/helm, against the real API server and through
// every target: `helm lint`; `helm template` of each preset piped to
// `kubectl apply --dry-run=server` (the API server validates every object,
// RBAC escalation checks included: through the tunnel the agent's own
// ClusterRole must cover what the chart grants); a value the chart requires
// left out fails with a message naming it; and the agent chart installed
// with `helm install --wait`, its pod turning Ready on the kwok node, then
// uninstalled. And the sidecar example (examples/sidecar) accepted as well.
import { join } from 'node:path';
import { REPO_DIR } from '../harness/paths.ts';
import { check, type Ctx, type Scenario } from '../harness/scenario.ts';

const AGENT_CHART = join(REPO_DIR, 'deploy', 'helm', 'pipeops-tunnel-agent');
const GATEWAY_CHART = join(REPO_DIR, 'deploy', 'helm', 'pipeops-tunnel-gateway');

const AGENT_REQUIRED = ['--set', 'gateway.url=https://gateway.pipeops.invalid', '--set', 'cluster.name=e2e', '--set', 'token.value=e2e-agent-token'];
const GATEWAY_REQUIRED = ['--set', 'tls.existingSecret=gateway-tls', '--set', 'tokens.existingSecret=gateway-tokens'];

/** Value sets rendered and validated by the API server: each preset of each chart. */
function presets(ns: string): Array<{ name: string; chart: string; args: string[] }> {
  return [
    {
      name: 'agent, full',
      chart: AGENT_CHART,
      args: [...AGENT_REQUIRED, '--set', 'gateway.caBundle=PEM', '--set', 'metrics.service.enabled=true', '--set', 'podDisruptionBudget.enabled=true'],
    },
    {
      name: 'agent, read-only, owner policy',
      chart: AGENT_CHART,
      args: [...AGENT_REQUIRED, '--set', 'rbac.preset=read-only', '--set', 'policy.readOnly=true', '--set', 'policy.denyResources={secrets}'],
    },
    {
      name: 'agent, namespaced',
      chart: AGENT_CHART,
      args: [...AGENT_REQUIRED, '--set', 'rbac.preset=namespaced', '--set', `rbac.namespaces={${ns}}`, '--set', `policy.namespaces={${ns}}`],
    },
    // runner-1: the runner id the matrix's agent may impersonate (deploy/kubernetes/agent.yaml); through the tunnel a
    // chart granting more than the agent holds would be refused as an escalation, as it should.
    {
      name: 'agent, access_as runner',
      chart: AGENT_CHART,
      args: [...AGENT_REQUIRED, '--set', 'accessAs=runner', '--set', 'rbac.impersonate.runners={runner-1}', '--set', 'token.existingSecret=agent-token'],
    },
    { name: 'gateway, one replica', chart: GATEWAY_CHART, args: [...GATEWAY_REQUIRED] },
    {
      name: 'gateway, three replicas on Redis',
      chart: GATEWAY_CHART,
      args: [
        ...GATEWAY_REQUIRED,
        '--set',
        'replicas=3',
        '--set',
        'redis.existingSecret=gateway-redis',
        '--set',
        'replicaSecret.existingSecret=gateway-replica',
        '--set',
        'tls.caKey=ca.crt',
      ],
    },
  ];
}

async function helm(ctx: Ctx, args: string[], expect = 0): Promise<{ stdout: string; stderr: string }> {
  const r = await ctx.t.helm(args, { timeoutMs: 120_000 });
  check(r.code === expect, `helm ${args.join(' ')} → exit ${r.code} (expected ${expect}): ${(r.stderr || r.stdout).trim().slice(0, 800)}`);
  return r;
}

export const chartScenarios: Scenario[] = [
  {
    name: 'charts: lint, every preset accepted by the API server (dry run), required values named',
    group: 'helm',
    async run(ctx) {
      const out: string[] = [];
      await helm(ctx, ['lint', '--strict', AGENT_CHART, ...AGENT_REQUIRED]);
      await helm(ctx, ['lint', '--strict', GATEWAY_CHART, ...GATEWAY_REQUIRED]);
      out.push('lint: both charts clean (--strict)');
      for (const p of presets(ctx.ns)) {
        const rendered = await helm(ctx, ['template', 'e2e', p.chart, '-n', ctx.ns, ...p.args]);
        // A binding is checked against its role (the creator must hold what it grants): the roles exist for real
        // while the rest is dry-run, and are deleted after.
        const roles = rendered.stdout
          .split(/^---$/m)
          .filter((doc) => /^kind: (Cluster)?Role$/m.test(doc))
          .join('\n---\n');
        if (roles !== '') await ctx.k(['apply', '-n', ctx.ns, '-f', '-'], { stdin: roles });
        try {
          const applied = await ctx.k(['apply', '--dry-run=server', '-n', ctx.ns, '-f', '-'], { stdin: rendered.stdout });
          const objects = applied
            .trim()
            .split('\n')
            .filter((l) => l.endsWith('(server dry run)'));
          check(objects.length > 0, `${p.name}: nothing applied: ${applied}`);
          out.push(
            `${p.name}: ${objects
              .map((l) => l.split(' ')[0])
              .sort()
              .join(', ')}`,
          );
        } finally {
          if (roles !== '') await ctx.k(['delete', '-n', ctx.ns, '--wait', '-f', '-'], { stdin: roles });
        }
      }
      const sidecar = await ctx.k(['apply', '--dry-run=server', '-n', ctx.ns, '-f', join(REPO_DIR, 'examples', 'sidecar', 'runner-with-proxy.yaml')]);
      check(sidecar.includes('job.batch/deploy-worker created (server dry run)'), sidecar);
      out.push('examples/sidecar/runner-with-proxy.yaml: accepted');
      const missing = await helm(ctx, ['template', 'e2e', AGENT_CHART, '--set', 'cluster.name=e2e', '--set', 'token.value=x'], 1);
      check(missing.stderr.includes('gateway.url is required'), missing.stderr);
      const runnerIds = await helm(ctx, ['template', 'e2e', AGENT_CHART, ...AGENT_REQUIRED, '--set', 'accessAs=runner'], 1);
      check(runnerIds.stderr.includes('accessAs runner needs rbac.impersonate.runners'), runnerIds.stderr);
      const fleet = await helm(ctx, ['template', 'e2e', GATEWAY_CHART, ...GATEWAY_REQUIRED, '--set', 'replicas=3'], 1);
      check(fleet.stderr.includes('replicas > 1 needs redis.url'), fleet.stderr);
      out.push('missing values: gateway.url, rbac.impersonate.runners, redis.url named');
      return out.join('\n');
    },
  },
  {
    name: 'charts: the agent chart installed with helm --wait, its pod Ready, uninstalled',
    group: 'helm',
    async run(ctx) {
      const out: string[] = [];
      const installed = await helm(ctx, [
        'install',
        'tunnel',
        AGENT_CHART,
        '-n',
        ctx.ns,
        ...AGENT_REQUIRED,
        '--set',
        `rbac.preset=namespaced`,
        '--set',
        `rbac.namespaces={${ctx.ns}}`,
        '--wait',
        '--timeout=90s',
      ]);
      check(installed.stdout.includes('STATUS: deployed'), installed.stdout);
      out.push('installed');
      const ready = await ctx.k([
        'get',
        'pods',
        '-n',
        ctx.ns,
        '-l',
        'app.kubernetes.io/instance=tunnel',
        '-o',
        'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
      ]);
      check(ready.trim() === 'True', `pod not Ready: ${ready}`);
      out.push(`pods Ready: ${ready.trim()}`);
      const spec = await ctx.k([
        'get',
        'deployment',
        'tunnel-pipeops-tunnel-agent',
        '-n',
        ctx.ns,
        '-o',
        'jsonpath={.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem} {.spec.template.spec.securityContext.runAsNonRoot} {.spec.template.spec.containers[0].readinessProbe.httpGet.path}',
      ]);
      check(spec === 'true true /ready', spec);
      out.push(`read-only root, non-root, readiness ${spec.split(' ')[2]}`);
      await helm(ctx, ['uninstall', 'tunnel', '-n', ctx.ns, '--wait', '--timeout=60s']);
      const left = await ctx.k(['get', 'clusterrole', 'tunnel-pipeops-tunnel-agent', '--ignore-not-found', '-o', 'name']);
      check(left.trim() === '', `ClusterRole left behind: ${left}`);
      out.push('uninstalled, nothing left');
      return out.join('\n');
    },
  },
];
