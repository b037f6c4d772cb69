// `pipeops-tunnel doctor --gateway URL --cluster C` on a runner's side: the
// way to the gateway, the runner token accepted, the cluster connected, and
// its API server's /version through the gateway and the agent.
import type { RunnerSettings } from '../commands/runner-flags.ts';
import { proxyFromEnv } from '../proxy-env.ts';
import { proxySecrets, trustWith, DOCTOR_STEP_TIMEOUT_MS, type DoctorRun } from './agent-doctor.ts';
import { clusterVersion, describeApiServer, describeCluster, listClusters, RUNNER_TOKEN_FIX, versionFailure } from './gateway-api.ts';
import { answerText, checkGatewayReach, RUNNER_WORDING, skipped } from './gateway-checks.ts';
import { describeError } from './gateway-route.ts';
import type { CheckResult } from './report.ts';

/** Runs every runner-side check for `s.cluster`. */
export async function runRunnerDoctor(s: RunnerSettings, env: Record<string, string | undefined>): Promise<DoctorRun> {
  const secrets = [s.token];
  const checks: CheckResult[] = [];
  const subject = `runner: cluster ${s.cluster} through ${s.gateway.origin}`;
  const proxy = proxyFromEnv(env);
  for (const p of [proxy?.httpsProxy, proxy?.httpProxy]) if (p !== undefined) secrets.push(...proxySecrets(p));
  const extra = env.NODE_EXTRA_CA_CERTS !== undefined && env.NODE_EXTRA_CA_CERTS !== '' ? ' + NODE_EXTRA_CA_CERTS' : '';
  const reach = await checkGatewayReach({
    base: s.gateway,
    proxy,
    trust: s.ca !== undefined ? trustWith(s.ca) : undefined,
    trustLabel: s.ca !== undefined ? `--ca ${s.caFile ?? ''} + system CAs${extra}` : `system CAs${extra}`,
    insecureSkipVerify: s.insecureSkipVerify,
    timeoutMs: DOCTOR_STEP_TIMEOUT_MS,
    wording: RUNNER_WORDING,
  });
  checks.push(...reach.checks);
  const later = ['token', 'cluster', 'version'];
  if (!reach.connected || !reach.handshake) {
    checks.push(...skipped(later, 'needs a connection to the gateway'));
    return { checks, secrets, subject };
  }
  if (!reach.trusted) {
    checks.push(...skipped(later, "the token is not sent: the gateway's certificate is not trusted"));
    return { checks, secrets, subject };
  }
  const route = reach.route;

  let listed: Awaited<ReturnType<typeof listClusters>>;
  try {
    listed = await listClusters(route, s.token, true);
  } catch (err) {
    checks.push({
      id: 'token',
      title: 'token',
      status: 'fail',
      detail: `GET /v1/clusters failed: ${describeError(err)}`,
      fix: 'see the TCP and TLS checks above',
    });
    checks.push(...skipped(['cluster', 'version'], 'needs the gateway to answer'));
    return { checks, secrets, subject };
  }
  if (listed.clusters === undefined) {
    const refused = listed.ex.status === 401 || listed.ex.status === 403;
    checks.push({
      id: 'token',
      title: 'token',
      status: 'fail',
      detail: `${refused ? 'refused' : 'GET /v1/clusters answered'}: ${answerText(listed.ex.status, listed.ex.body)}`,
      fix: refused ? RUNNER_TOKEN_FIX : 'check the gateway URL (a proxy or load balancer in between may answer instead)',
    });
    checks.push(...skipped(['cluster', 'version'], 'needs the token accepted'));
    return { checks, secrets, subject };
  }
  const n = listed.clusters.length;
  checks.push({
    id: 'token',
    title: 'token',
    status: 'pass',
    detail: `accepted: GET /v1/clusters lists ${String(n)} connected cluster${n === 1 ? '' : 's'} for it`,
  });

  const found = listed.clusters.find((c) => c.cluster === s.cluster);
  let version: CheckResult;
  try {
    const started = Date.now();
    const v = await clusterVersion(route, s.token, s.cluster, true);
    version =
      v.ex.status === 200
        ? {
            id: 'version',
            title: '/version',
            status: 'pass',
            detail: `${v.gitVersion ?? '?'} from /k8s/clusters/${s.cluster}/version, through the gateway and the agent (${String(Date.now() - started)} ms)`,
          }
        : { id: 'version', title: '/version', status: 'fail', ...versionFailure(v.ex.status, v.ex.body, s.cluster) };
  } catch (err) {
    version = {
      id: 'version',
      title: '/version',
      status: 'fail',
      detail: `GET /k8s/clusters/${s.cluster}/version failed: ${describeError(err)}`,
      fix: 'see the checks above',
    };
  }
  if (found === undefined) {
    checks.push({
      id: 'cluster',
      title: 'cluster',
      status: 'fail',
      detail: `${s.cluster} is not among the connected clusters this token sees`,
      fix: "its agent is not connected (pipeops-tunnel doctor on the agent's side says why), or this token may not reach it (clusters: of the runner in the tokens file)",
    });
  } else {
    const api = describeApiServer(found);
    const detail = `connected: ${describeCluster(found)}
its API server, as the agent last reported: ${api.text}`;
    // A report older than the /version just answered through the agent (the first one is often sent before the agent's first check) is no failure.
    checks.push(
      api.reachable === false && version.status !== 'pass'
        ? { id: 'cluster', title: 'cluster', status: 'warn', detail, fix: "`pipeops-tunnel doctor` on the agent's side checks its credentials and API server" }
        : { id: 'cluster', title: 'cluster', status: 'pass', detail },
    );
  }
  checks.push(version);
  return { checks, secrets, subject };
}
