// What the agent's RBAC allows, read from a SelfSubjectRulesReview, compared
// with what runners need through it: deploy/kubernetes/agent.yaml's
// ClusterRole, less what the owner's policy refuses anyway (no writes with
// policy.read_only, no exec with deny_subresources: [exec], …).
//
// Matching follows Kubernetes RBAC (plugin/pkg/auth/authorizer/rbac/rbac.go):
// `*` matches any verb, group or resource; `pods/*` any subresource of pods,
// `*/scale` one subresource of any resource; a rule with resourceNames only
// allows requests naming one of them.

/** A `resourceRules` entry of `SelfSubjectRulesReview.status`. */
export interface ResourceRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
}

/** The owner's policy keys that narrow what runners need. */
export interface PolicyNeeds {
  read_only: boolean;
  deny_subresources: readonly string[];
  deny_resources: readonly string[];
}

export const READ_VERBS = ['get', 'list', 'watch'] as const;
export const WRITE_VERBS = ['create', 'update', 'patch', 'delete', 'deletecollection'] as const;
/** Subresources runners use (`kubectl exec`, `attach`, `port-forward`, `logs`) and the verb RBAC checks for each. */
export const POD_SUBRESOURCES: ReadonlyArray<{ sub: string; verb: string }> = [
  { sub: 'exec', verb: 'create' },
  { sub: 'attach', verb: 'create' },
  { sub: 'portforward', verb: 'create' },
  { sub: 'log', verb: 'get' },
];

const has = (list: readonly string[] | undefined, v: string): boolean => list !== undefined && (list.includes('*') || list.includes(v));

function resourceMatches(list: readonly string[] | undefined, resource: string): boolean {
  if (list === undefined) return false;
  const slash = resource.indexOf('/');
  for (const r of list) {
    if (r === '*' || r === resource) return true;
    if (slash >= 0 && (r === `${resource.slice(0, slash)}/*` || r === `*/${resource.slice(slash + 1)}`)) return true;
  }
  return false;
}

/** Whether the rules allow `verb` on `resource` (`pods`, `pods/exec`) of `group`, with `name` if given. */
export function allows(rules: readonly ResourceRule[], verb: string, group: string, resource: string, name?: string): boolean {
  return rules.some(
    (r) =>
      has(r.verbs, verb) &&
      has(r.apiGroups, group) &&
      resourceMatches(r.resources, resource) &&
      (r.resourceNames === undefined || r.resourceNames.length === 0 || (name !== undefined && r.resourceNames.includes(name))),
  );
}

/** What every authenticated user may create (system:basic-user): no sign of rights for runners. */
const SELF_REVIEWS = /^selfsubject(access|rules)?reviews$/;

/** Where `verb` is allowed on whole resources: `'all'` (every group and resource), or the resources it names (`deployments.apps`). */
export function coverage(rules: readonly ResourceRule[], verb: string): 'all' | string[] {
  if (allows(rules, verb, '*', '*')) return 'all';
  const named = new Set<string>();
  for (const r of rules) {
    if (!has(r.verbs, verb) || (r.resourceNames !== undefined && r.resourceNames.length > 0)) continue;
    for (const g of r.apiGroups ?? []) {
      for (const res of r.resources ?? []) if (!res.includes('/') && !SELF_REVIEWS.test(res)) named.add(g === '' ? res : `${res}.${g}`);
    }
  }
  return [...named].sort();
}

/** The names a rule set lets the subject impersonate as `resource` (`users`, `groups`): `'any'`, or the names. */
export function impersonable(rules: readonly ResourceRule[], resource: 'users' | 'groups'): 'any' | string[] {
  const names = new Set<string>();
  for (const r of rules) {
    if (!has(r.verbs, 'impersonate') || !has(r.apiGroups, '') || !resourceMatches(r.resources, resource)) continue;
    if (r.resourceNames === undefined || r.resourceNames.length === 0) return 'any';
    for (const n of r.resourceNames) names.add(n);
  }
  return [...names].sort();
}

/** What runners need and the rules do not give, one phrase each; `noReads` when nothing can even be read. */
export function missingForRunners(rules: readonly ResourceRule[], policy: PolicyNeeds): { missing: string[]; noReads: boolean; granted: string[] } {
  const missing: string[] = [];
  const granted: string[] = [];
  const judge = (verbs: readonly string[], what: string): void => {
    const cov = verbs.map((v) => ({ v, c: coverage(rules, v) }));
    const all = cov.filter((x) => x.c === 'all').map((x) => x.v);
    const some = cov.filter((x) => x.c !== 'all' && x.c.length > 0);
    const none = cov.filter((x) => x.c !== 'all' && x.c.length === 0).map((x) => x.v);
    if (all.length > 0) granted.push(`${all.join(', ')} on every resource`);
    // Verbs allowed on the same resources share one line.
    const groups = new Map<string, { verbs: string[]; list: string[] }>();
    for (const x of some) {
      const list = x.c as string[];
      const key = list.join(',');
      const g = groups.get(key) ?? { verbs: [], list };
      g.verbs.push(x.v);
      groups.set(key, g);
    }
    for (const { verbs: vs, list } of groups.values()) {
      missing.push(
        `${vs.join(', ')} on ${String(list.length)} resource${list.length === 1 ? '' : 's'} only (${list.slice(0, 4).join(', ')}${list.length > 4 ? ', …' : ''}), not on every resource`,
      );
    }
    if (none.length > 0) missing.push(`${none.join(', ')} (${what}) on no resource`);
  };
  judge(READ_VERBS, 'reads');
  if (!policy.read_only) judge(WRITE_VERBS, 'writes');
  const noReads =
    coverage(rules, 'get') !== 'all' &&
    (coverage(rules, 'get') as string[]).length === 0 &&
    coverage(rules, 'list') !== 'all' &&
    (coverage(rules, 'list') as string[]).length === 0;
  const podsDenied = policy.deny_resources.includes('pods');
  for (const { sub, verb } of POD_SUBRESOURCES) {
    if (podsDenied || policy.deny_subresources.includes(sub) || (policy.read_only && verb !== 'get')) continue;
    if (allows(rules, verb, '', `pods/${sub}`)) granted.push(`${verb} pods/${sub}`);
    else missing.push(`${verb} on pods/${sub}`);
  }
  return { missing, noReads, granted };
}
