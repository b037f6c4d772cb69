// `pipeops-tunnel doctor` and `status` against the real kube-apiserver and
// its real RBAC. Agent mode runs with the matrix agents' identities (their
// service accounts, fresh tokens): the full agent (deploy/kubernetes/agent.yaml's
// ClusterRole) passes every check; the read-only agent (`view`) passes with
// an RBAC warning naming what runners will be refused; the `access_as:
// runner` agent's impersonation rights pass; a service account without any
// binding fails the RBAC check. Their gateway is one of this scenario's own
// (`pipeops-tunnel gateway --dev`, a tokens file naming these agents), since
// the matrix's agent tokens are the harness's secret. Runner mode and
// `status` run against the matrix's gateway and its `e2e` agent.
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { Env } from '../harness/env.ts';
import { CLI } from '../harness/paths.ts';
import { start } from '../harness/proc.ts';
import { runCommand, type CommandResult } from '../harness/run-command.ts';
import { check, type Scenario } from '../harness/scenario.ts';
import { AS_RUNNER_SA, RUNNER_USER } from '../harness/trust.ts';
import { writeKubeconfig } from '../harness/tunnel.ts';

interface Check {
  id: string;
  status: string;
  detail: string;
  fix?: string;
}
interface Report {
  ok: boolean;
  checks: Check[];
}

/** The doctor's identities: a service account in pipeops-system (or the test namespace's `default`) and the agent config it runs with. */
interface Identity {
  name: string;
  sa: string;
  ns?: string;
  config?: Record<string, Record<string, unknown>>;
}

const IDENTITIES: Identity[] = [
  { name: 'full', sa: 'pipeops-tunnel-agent' },
  { name: 'readonly', sa: 'pipeops-tunnel-agent-readonly' },
  { name: 'as-runner', sa: AS_RUNNER_SA, config: { kubernetes: { access_as: 'runner' } } },
  { name: 'unbound', sa: 'default' },
];

function cli(env: Env, args: string[], extraEnv: Record<string, string>): Promise<CommandResult> {
  return runCommand(process.execPath, [CLI, ...args], { home: env.home, env: extraEnv, timeoutMs: 60_000 });
}

function parse(r: CommandResult, what: string): Report {
  try {
    return JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`${what}: not JSON (exit ${r.code}): ${r.stdout.slice(0, 400)} ${r.stderr.slice(0, 400)}`);
  }
}

function byId(report: Report, id: string): Check {
  const c = report.checks.find((x) => x.id === id);
  check(c !== undefined, `no ${id} check in ${report.checks.map((x) => x.id).join(', ')}`);
  return c;
}

/** `id status` per check, one line: the transcript. */
function summary(report: Report): string {
  return report.checks.map((c) => `${c.id} ${c.status}`).join(', ');
}

export const doctorScenarios: Scenario[] = [
  {
    name: "doctor: agent mode with the matrix agents' identities and the real RBAC",
    group: 'doctor',
    compare: false,
    notOn: {
      gateway: "agent mode checks the agent's own way (its credentials, its dial), not a runner's",
      proxy: "agent mode checks the agent's own way (its credentials, its dial), not a runner's",
    },
    async run(ctx) {
      const { env } = ctx;
      const dir = join(env.runDir, 'doctor');
      const tokens = Object.fromEntries(IDENTITIES.map((i) => [i.name, randomBytes(24).toString('base64url')]));
      const tokensFile = join(env.runDir, 'doctor-tokens.yaml');
      writeFileSync(
        tokensFile,
        stringify({ agents: IDENTITIES.map((i) => ({ cluster: `doctor-${i.name}`, token: tokens[i.name] })), runners: [], admins: [] }),
        { mode: 0o600 },
      );
      const gwConfig = join(env.runDir, 'doctor-gateway.yaml');
      writeFileSync(gwConfig, stringify({ gateway: { state_dir: dir } }));
      const gateway = start(
        'doctor-gateway',
        process.execPath,
        [CLI, 'gateway', '--dev', '--listen', '127.0.0.1:0', '--tokens', tokensFile, '--config', gwConfig],
        { logDir: env.logDir },
      );
      const out: string[] = [];
      try {
        const url = String((await gateway.waitForRecord('gateway listening', (r) => typeof r.url === 'string' && typeof r.port === 'number', 30_000)).url);
        const caFile = String((await gateway.waitForRecord('dev CA', (r) => typeof r.caFile === 'string', 30_000)).caFile);
        const reports: Record<string, { r: CommandResult; report: Report }> = {};
        for (const id of IDENTITIES) {
          const ns = id.sa === 'default' ? ctx.ns : 'pipeops-system';
          const made = await env.cluster.admin(['create', 'token', id.sa, '-n', ns, '--duration=1h']);
          check(made.code === 0, `kubectl create token ${id.sa}: ${made.stderr}`);
          const saToken = made.stdout.trim();
          const kubeconfig = writeKubeconfig(join(env.runDir, `doctor-${id.name}.kubeconfig`), {
            server: env.cluster.url,
            token: saToken,
            caData: env.cluster.caData,
          });
          const config = join(env.runDir, `doctor-${id.name}.yaml`);
          writeFileSync(
            config,
            stringify({
              agent: { cluster_name: `doctor-${id.name}` },
              pipeops: { api_url: url, tls: { ca_file: caFile } },
              kubernetes: { kubeconfig, namespace: ctx.ns, ...id.config?.kubernetes },
            }),
          );
          const r = await cli(env, ['doctor', '--config', config], { PIPEOPS_PIPEOPS_TOKEN: tokens[id.name] ?? '' });
          for (const secret of [tokens[id.name] ?? '', saToken])
            check(!r.stdout.includes(secret) && !r.stderr.includes(secret), `${id.name}: a token was printed`);
          const report = parse(r, `doctor (${id.name})`);
          reports[id.name] = { r, report };
          out.push(`${id.name}: exit ${r.code}; ${summary(report)}`);
        }

        const full = reports.full!;
        check(
          full.r.code === 0 && full.report.checks.every((c) => c.status === 'pass'),
          `the full agent passes every check: ${summary(full.report)}\n${full.r.stdout}`,
        );
        check(/v1\.33\./.test(byId(full.report, 'apiserver').detail), `the API server's version: ${byId(full.report, 'apiserver').detail}`);
        check(/every resource/.test(byId(full.report, 'rbac').detail), `the full agent's RBAC: ${byId(full.report, 'rbac').detail}`);

        const ro = reports.readonly!;
        const rbac = byId(ro.report, 'rbac');
        check(ro.r.code === 0 && rbac.status === 'warn', `the read-only agent: exit 0 with an RBAC warning: ${summary(ro.report)}`);
        for (const missing of [
          /create, update, patch, delete, deletecollection \(writes\) on no resource/,
          /create on pods\/exec/,
          /create on pods\/portforward/,
        ]) {
          check(missing.test(rbac.detail), `the read-only agent's RBAC check names ${String(missing)}: ${rbac.detail}`);
        }
        check(!/get on pods\/log|create on pods\/log/.test(rbac.detail), '`view` grants pods/log');
        out.push(`readonly RBAC: ${rbac.detail.split('\n').join(' | ')}`);

        const asRunner = reports['as-runner']!;
        const imp = byId(asRunner.report, 'impersonation');
        check(asRunner.r.code === 0 && imp.status === 'pass', `the access_as: runner agent may impersonate: ${imp.status} ${imp.detail}`);
        check(imp.detail.includes(RUNNER_USER) && imp.detail.includes('e2e-team'), `names the runner user and its group: ${imp.detail}`);
        out.push(`as-runner impersonation: ${imp.detail}`);

        const unbound = reports.unbound!;
        const none = byId(unbound.report, 'rbac');
        check(
          unbound.r.code === 1 && none.status === 'fail' && /can neither get nor list anything/.test(none.detail),
          `an unbound service account fails RBAC: ${none.status} ${none.detail}`,
        );
        check(byId(unbound.report, 'token').status === 'pass', 'its token is accepted all the same');
        return out.join('\n');
      } finally {
        await gateway.stop('SIGTERM', 5_000);
      }
    },
  },
  {
    name: 'doctor and status: runner mode and the agent, through the matrix gateway',
    group: 'doctor',
    compare: false,
    notOn: {
      direct: 'there is no gateway on the direct path',
      proxy: 'the runner mode checks the gateway itself, which the proxy target reaches the same way',
    },
    async run(ctx) {
      const { env } = ctx;
      const { tunnel } = env;
      const runner = { PIPEOPS_RUNNER_TOKEN: tunnel.runnerToken };
      const out: string[] = [];
      const doctor = await cli(env, ['doctor', '--gateway', tunnel.gatewayUrl, '--cluster', 'e2e', '--ca', tunnel.caFile], runner);
      const report = parse(doctor, 'doctor --gateway');
      check(doctor.code === 0 && report.checks.every((c) => c.status === 'pass'), `runner doctor passes: ${summary(report)}\n${doctor.stdout}`);
      check(/^v1\.33\.\d+ from \/k8s\/clusters\/e2e\/version/.test(byId(report, 'version').detail), byId(report, 'version').detail);
      out.push(`doctor --gateway: ${summary(report)}`);

      const gone = await cli(env, ['doctor', '--gateway', tunnel.gatewayUrl, '--cluster', 'e2e-nowhere', '--ca', tunnel.caFile], runner);
      const goneReport = parse(gone, 'doctor --gateway (unknown cluster)');
      check(gone.code === 1 && byId(goneReport, 'cluster').status === 'fail', `an unconnected cluster fails: ${summary(goneReport)}`);
      out.push(`doctor --gateway (e2e-nowhere): ${summary(goneReport)}`);

      const st = await cli(env, ['status', '--gateway', tunnel.gatewayUrl, '--cluster', 'e2e', '--ca', tunnel.caFile], runner);
      const s = JSON.parse(st.stdout) as {
        ok: boolean;
        agent: { name: string } | null;
        apiServer: { reachable: boolean | null };
        version: { gitVersion: string | null } | null;
      };
      check(
        st.code === 0 && s.ok && s.agent?.name === 'e2e-agent-e2e' && s.apiServer.reachable === true && /^v1\.33\./.test(s.version?.gitVersion ?? ''),
        `status --gateway: ${st.stdout}`,
      );
      out.push(`status --gateway: connected, agent ${s.agent.name}, API server reachable`);

      const agent = tunnel.agents.get('e2e');
      check(agent !== undefined, 'the e2e agent');
      const as = await cli(env, ['status', '--agent', agent.healthUrl], {});
      const a = JSON.parse(as.stdout) as { ok: boolean; tunnel: { connected: boolean | null }; apiServer: { reachable: boolean | null } };
      check(as.code === 0 && a.ok && a.tunnel.connected === true && a.apiServer.reachable === true, `status --agent: ${as.stdout}`);
      out.push('status --agent: ready, tunnel connected, API server reachable');
      for (const r of [doctor, gone, st])
        check(!r.stdout.includes(tunnel.runnerToken) && !r.stderr.includes(tunnel.runnerToken), 'the runner token was printed');
      return out.join('\n');
    },
  },
];
