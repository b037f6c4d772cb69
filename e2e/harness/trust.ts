// The trust-boundary fixture: who the runner is, which agents act as whom,
// and the RBAC in the cluster that gives the runner's identity meaning.
//
// - `e2e-as-runner`: an agent with `kubernetes.access_as: runner`. Its
//   service account is bound to deploy/kubernetes/agent.yaml's ClusterRole as
//   shipped (whose `impersonate` rule names user `pipeops:runner:runner-1` and
//   group `pipeops:runners`), plus one ClusterRole for the runner's own group
//   `e2e-team` — what the manifest's comment tells an owner to add for the
//   `groups:` of their runners. The runner's identity may only work in
//   TEAM_NAMESPACE (a Role bound to group `e2e-team`).
// - `e2e-policy`: an agent (the full agent's service account) with an owner
//   policy: no exec, no secrets, only POLICY_NAMESPACE.
// - `e2e-policy-readonly`: the same service account with `policy.read_only`.
import type { CommandResult } from './run-command.ts';

/** The e2e runner's id: the example id deploy/kubernetes/agent.yaml ships in its impersonate rule. */
export const RUNNER_ID = 'runner-1';
/** The runner's groups in the gateway's tokens file. */
export const RUNNER_GROUPS = ['e2e-team'];
/** The user the `access_as: runner` agent impersonates. */
export const RUNNER_USER = `pipeops:runner:${RUNNER_ID}`;
/** The group every impersonated runner is in. */
export const RUNNERS_GROUP = 'pipeops:runners';
/** The one namespace where the runner's identity has a Role (pods, pods/log, configmaps). */
export const TEAM_NAMESPACE = 'e2e-team-space';
/** The policy agent's `policy.namespaces` allow list (one namespace). */
export const POLICY_NAMESPACE = 'e2e-allowed';

/** The owner policy of `e2e-policy` (config section `policy`). */
export const POLICY = { deny_subresources: ['exec'], deny_resources: ['secrets'], namespaces: [POLICY_NAMESPACE] };
/** The owner policy of `e2e-policy-readonly`. */
export const READ_ONLY_POLICY = { read_only: true };

export const AS_RUNNER_SA = 'pipeops-tunnel-agent-as-runner';

const rbac = 'rbac.authorization.k8s.io';

/** Objects applied with the admin credential after deploy/kubernetes/agent.yaml. */
export function trustObjects(): unknown {
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: AS_RUNNER_SA, namespace: 'pipeops-system' } },
      {
        apiVersion: `${rbac}/v1`,
        kind: 'ClusterRoleBinding',
        metadata: { name: AS_RUNNER_SA },
        roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: 'pipeops-tunnel-agent' },
        subjects: [{ kind: 'ServiceAccount', name: AS_RUNNER_SA, namespace: 'pipeops-system' }],
      },
      {
        apiVersion: `${rbac}/v1`,
        kind: 'ClusterRole',
        metadata: { name: `${AS_RUNNER_SA}-groups` },
        rules: [{ apiGroups: [''], resources: ['groups'], verbs: ['impersonate'], resourceNames: RUNNER_GROUPS }],
      },
      {
        apiVersion: `${rbac}/v1`,
        kind: 'ClusterRoleBinding',
        metadata: { name: `${AS_RUNNER_SA}-groups` },
        roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: `${AS_RUNNER_SA}-groups` },
        subjects: [{ kind: 'ServiceAccount', name: AS_RUNNER_SA, namespace: 'pipeops-system' }],
      },
      {
        apiVersion: `${rbac}/v1`,
        kind: 'Role',
        metadata: { name: 'e2e-team', namespace: TEAM_NAMESPACE },
        rules: [
          { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list', 'watch'] },
          { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
        ],
      },
      {
        apiVersion: `${rbac}/v1`,
        kind: 'RoleBinding',
        metadata: { name: 'e2e-team', namespace: TEAM_NAMESPACE },
        roleRef: { apiGroup: rbac, kind: 'Role', name: 'e2e-team' },
        subjects: [{ apiGroup: rbac, kind: 'Group', name: 'e2e-team' }],
      },
    ],
  };
}

/** Sets up the trust fixture: namespaces, RBAC, a Running pod in each of the two fixed namespaces. */
export async function setupTrust(o: {
  admin(args: string[], stdin?: string): Promise<CommandResult>;
  namespace(name: string): Promise<string>;
  pod(ns: string, name: string): Promise<void>;
}): Promise<void> {
  await o.namespace(TEAM_NAMESPACE);
  await o.namespace(POLICY_NAMESPACE);
  const r = await o.admin(['apply', '-f', '-'], JSON.stringify(trustObjects()));
  if (r.code !== 0) throw new Error(`trust fixture RBAC: ${r.stderr}`);
  await o.pod(TEAM_NAMESPACE, 'team-app');
  await o.pod(POLICY_NAMESPACE, 'allowed-app');
}
