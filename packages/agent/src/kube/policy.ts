import type { OwnerPolicyReport, RequestInfo } from '@pipeops/tunnel-protocol';
import { AgentError } from '../errors.ts';

/**
 * The owner policy (agent config section `policy`). Enforced in the agent;
 * nothing the gateway or a runner sends can change it. Every rule narrows
 * what the agent's own Kubernetes credentials would allow; none widens it.
 */
export interface AgentPolicy {
  /**
   * Only get/list/watch on resources and GET/HEAD on non-resource paths.
   * Connections are never reads: the subresources exec, attach, portforward
   * and proxy, the deprecated `/proxy/` prefix and any upgraded request are
   * refused whatever their method. Default `false`.
   */
  readOnly: boolean;
  /** Subresources refused, e.g. `['exec', 'attach', 'portforward', 'proxy']`; `proxy` also refuses the deprecated `/proxy/` prefix. Default `[]`. */
  denySubresources: string[];
  /**
   * Resources refused with all their subresources: a plain name (`secrets`)
   * matches that resource in every group, `resource.group`
   * (`deployments.apps`) only in that group. Default `[]`.
   */
  denyResources: string[];
  /**
   * Allowed namespaces; empty = every namespace. When set: namespaced
   * requests outside the list are refused, and so are requests across all
   * namespaces (`/api/v1/pods`); on cluster-scoped resources (and on the
   * Namespace objects themselves) only reads are allowed, so creating,
   * changing or deleting a Namespace is refused; non-resource paths allow
   * only GET/HEAD. A resource outside {@link clusterScopedResources} with no
   * namespace counts as a request across all namespaces. Default `[]`.
   */
  namespaces: string[];
}

/** The policy that allows everything (frozen). */
export const defaultAgentPolicy: Readonly<AgentPolicy> = Object.freeze({
  readOnly: false,
  denySubresources: frozenList([]),
  denyResources: frozenList([]),
  namespaces: frozenList([]),
});

/** The rule a refusal names (the snake_case config key). */
export type PolicyRule = 'read_only' | 'deny_subresources' | 'deny_resources' | 'namespaces';

/** The outcome of {@link evaluatePolicy}; a refusal carries the rule and a message for the runner. */
export type PolicyDecision = { allowed: true } | { allowed: false; rule: PolicyRule; message: string };

/** Options of {@link evaluatePolicy}. */
export interface EvaluatePolicyOptions {
  /** The request asks for a protocol upgrade (WebSocket, SPDY): never a read. Default `false`. */
  upgrade?: boolean;
  /**
   * Scope of a resource requested without a namespace, e.g. from discovery:
   * `true` cluster-scoped, `false` namespaced, `undefined` → the built-in
   * {@link clusterScopedResources} table. Only consulted when `namespaces` is set.
   */
  isClusterScoped?: (apiGroup: string, resource: string) => boolean | undefined;
}

/**
 * Built-in cluster-scoped resources, as `resource` (core group) or
 * `resource.group`. With `namespaces` set, reads of these stay allowed; any
 * other resource requested without a namespace is treated as a request across
 * all namespaces and refused, which fails closed for cluster-scoped custom
 * resources (pass {@link EvaluatePolicyOptions.isClusterScoped} to know them).
 */
export const clusterScopedResources: ReadonlySet<string> = new Set([
  'namespaces',
  'nodes',
  'persistentvolumes',
  'componentstatuses',
  'mutatingwebhookconfigurations.admissionregistration.k8s.io',
  'validatingwebhookconfigurations.admissionregistration.k8s.io',
  'validatingadmissionpolicies.admissionregistration.k8s.io',
  'validatingadmissionpolicybindings.admissionregistration.k8s.io',
  'mutatingadmissionpolicies.admissionregistration.k8s.io',
  'mutatingadmissionpolicybindings.admissionregistration.k8s.io',
  'customresourcedefinitions.apiextensions.k8s.io',
  'apiservices.apiregistration.k8s.io',
  'tokenreviews.authentication.k8s.io',
  'selfsubjectreviews.authentication.k8s.io',
  'subjectaccessreviews.authorization.k8s.io',
  'selfsubjectaccessreviews.authorization.k8s.io',
  'selfsubjectrulesreviews.authorization.k8s.io',
  'certificatesigningrequests.certificates.k8s.io',
  'clustertrustbundles.certificates.k8s.io',
  'flowschemas.flowcontrol.apiserver.k8s.io',
  'prioritylevelconfigurations.flowcontrol.apiserver.k8s.io',
  'storageversions.internal.apiserver.k8s.io',
  'ingressclasses.networking.k8s.io',
  'ipaddresses.networking.k8s.io',
  'servicecidrs.networking.k8s.io',
  'runtimeclasses.node.k8s.io',
  'clusterroles.rbac.authorization.k8s.io',
  'clusterrolebindings.rbac.authorization.k8s.io',
  'deviceclasses.resource.k8s.io',
  'resourceslices.resource.k8s.io',
  'priorityclasses.scheduling.k8s.io',
  'csidrivers.storage.k8s.io',
  'csinodes.storage.k8s.io',
  'storageclasses.storage.k8s.io',
  'volumeattachments.storage.k8s.io',
  'volumeattributesclasses.storage.k8s.io',
  'storageversionmigrations.storagemigration.k8s.io',
  'nodes.metrics.k8s.io',
]);

const ALLOWED: PolicyDecision = Object.freeze({ allowed: true });
const READ_VERBS = new Set(['get', 'list', 'watch']);
const NON_RESOURCE_READS = new Set(['get', 'head']);
const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward', 'proxy']);
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
const MAX_QUOTED_CHARS = 256;
const MAX_LISTED_NAMESPACES = 10;

/** The policy with its lists as Sets, built once per verified policy. */
interface CompiledPolicy {
  open: boolean;
  readOnly: boolean;
  denySubresources: ReadonlySet<string>;
  /** `resource` entries: the resource in every group. */
  denyAnyGroup: ReadonlySet<string>;
  /** `resource.group` entries. */
  denyInGroup: ReadonlySet<string>;
  /** `undefined` = every namespace. */
  namespaces: ReadonlySet<string> | undefined;
  namespaceList: string;
}

const compiledPolicies = new WeakMap<AgentPolicy, CompiledPolicy>();

const KEYS = [
  ['read_only', 'readOnly'],
  ['deny_subresources', 'denySubresources'],
  ['deny_resources', 'denyResources'],
  ['namespaces', 'namespaces'],
] as const;

function fail(field: string, why: string): never {
  throw new AgentError('PT_ERR_CONFIG', `invalid agent option ${field}: ${why}`);
}

/**
 * Checks the `policy` config section and fills defaults. Accepts the
 * snake_case config keys (`read_only`, `deny_subresources`, `deny_resources`,
 * `namespaces`) or the {@link AgentPolicy} field names; `undefined`/`null`
 * (the section or a key left empty in YAML) means the default. Unknown keys
 * are refused, so a misspelt rule cannot silently allow everything. Names must
 * be lowercase Kubernetes names; duplicates are dropped.
 *
 * Returns a frozen policy whose lookup Sets are precomputed. Throws
 * `AgentError` `PT_ERR_CONFIG` naming the key, e.g.
 * `invalid agent option policy.deny_subresources: must be a list of names`.
 */
export function verifyAgentPolicy(p: unknown): AgentPolicy {
  if (p === undefined || p === null) return defaultAgentPolicy as AgentPolicy;
  if (typeof p !== 'object' || Array.isArray(p)) fail('policy', 'must be a mapping of read_only, deny_subresources, deny_resources, namespaces');
  const src = p as Record<string, unknown>;
  const known = new Set<string>(KEYS.flat());
  for (const key of Object.keys(src)) {
    if (!known.has(key)) fail(`policy.${key}`, 'is not a policy setting (expected read_only, deny_subresources, deny_resources, namespaces)');
  }
  const pick = (snake: string, camel: string): { key: string; value: unknown } => {
    const hasSnake = src[snake] !== undefined && src[snake] !== null;
    const hasCamel = snake !== camel && src[camel] !== undefined && src[camel] !== null;
    if (hasSnake && hasCamel) fail(`policy.${snake}`, `is given twice (as ${snake} and ${camel})`);
    return hasCamel ? { key: camel, value: src[camel] } : { key: snake, value: src[snake] };
  };

  const ro = pick('read_only', 'readOnly');
  if (ro.value !== undefined && ro.value !== null && typeof ro.value !== 'boolean') fail(`policy.${ro.key}`, 'must be true or false');
  const sub = pick('deny_subresources', 'denySubresources');
  const res = pick('deny_resources', 'denyResources');
  const ns = pick('namespaces', 'namespaces');
  const policy: AgentPolicy = Object.freeze({
    readOnly: ro.value === true,
    denySubresources: nameList(sub.key, sub.value, (s) => DNS_LABEL.test(s), 'a subresource name such as "exec"'),
    denyResources: nameList(
      res.key,
      res.value,
      isResourceEntry,
      'a resource name such as "secrets" or "deployments.apps" (subresources go in deny_subresources)',
    ),
    namespaces: nameList(ns.key, ns.value, (s) => DNS_LABEL.test(s), 'a namespace name'),
  });
  compiledPolicies.set(policy, compile(policy));
  return policy;
}

function isResourceEntry(s: string): boolean {
  const dot = s.indexOf('.');
  return DNS_SUBDOMAIN.test(s) && DNS_LABEL.test(dot === -1 ? s : s.slice(0, dot));
}

function nameList(key: string, value: unknown, valid: (s: string) => boolean, what: string): string[] {
  if (value === undefined || value === null) return frozenList([]);
  if (!Array.isArray(value)) fail(`policy.${key}`, 'must be a list of names');
  const out: string[] = [];
  value.forEach((v: unknown, i) => {
    if (typeof v !== 'string' || !valid(v)) fail(`policy.${key}[${String(i)}]`, `must be ${what}, got ${quote(typeof v === 'string' ? v : String(v))}`);
    if (!out.includes(v)) out.push(v);
  });
  return frozenList(out);
}

function frozenList(xs: string[]): string[] {
  return Object.freeze(xs) as string[];
}

/** `true` when the policy allows everything (no rule set). */
export function isOpenPolicy(p: AgentPolicy): boolean {
  return !p.readOnly && p.denySubresources.length === 0 && p.denyResources.length === 0 && p.namespaces.length === 0;
}

/** The policy as reported in hello/status and `/v1/clusters`: `{ read_only, deny_subresources, deny_resources, namespaces }`. */
export function policySummary(p: AgentPolicy): Required<Omit<OwnerPolicyReport, 'access_as'>> {
  return {
    read_only: p.readOnly,
    deny_subresources: [...p.denySubresources],
    deny_resources: [...p.denyResources],
    namespaces: [...p.namespaces],
  };
}

function compile(p: AgentPolicy): CompiledPolicy {
  const denyAnyGroup = new Set<string>();
  const denyInGroup = new Set<string>();
  for (const r of p.denyResources) (r.includes('.') ? denyInGroup : denyAnyGroup).add(r.toLowerCase());
  const listed = p.namespaces.slice(0, MAX_LISTED_NAMESPACES).map(quote).join(', ');
  return {
    open: isOpenPolicy(p),
    readOnly: p.readOnly,
    denySubresources: new Set(p.denySubresources.map((s) => s.toLowerCase())),
    denyAnyGroup,
    denyInGroup,
    namespaces: p.namespaces.length === 0 ? undefined : new Set(p.namespaces),
    namespaceList: p.namespaces.length > MAX_LISTED_NAMESPACES ? `${listed}, …` : listed,
  };
}

/** The compiled form: cached for frozen policies (every verified one), rebuilt for a mutable object. */
function compiled(p: AgentPolicy): CompiledPolicy {
  const hit = compiledPolicies.get(p);
  if (hit !== undefined) return hit;
  const c = compile(p);
  if (Object.isFrozen(p) && Object.isFrozen(p.denySubresources) && Object.isFrozen(p.denyResources) && Object.isFrozen(p.namespaces))
    compiledPolicies.set(p, c);
  return c;
}

/**
 * Decides one request. The rules apply in the order read_only,
 * deny_subresources, deny_resources, namespaces; the first that refuses is
 * reported. Cheap: Set lookups on a policy compiled once.
 */
export function evaluatePolicy(policy: AgentPolicy, info: RequestInfo, opts?: EvaluatePolicyOptions): PolicyDecision {
  const c = compiled(policy);
  if (c.open) return ALLOWED;
  const upgrade = opts?.upgrade === true;
  const connect = info.isResourceRequest && (info.connect || info.verb === 'proxy' || CONNECT_SUBRESOURCES.has(info.subresource));
  const read = !upgrade && !connect && (info.isResourceRequest ? READ_VERBS.has(info.verb) : NON_RESOURCE_READS.has(info.verb));

  if (c.readOnly && !read) {
    const why =
      (upgrade || connect) && READ_VERBS.has(info.verb) ? ': exec, attach, portforward, proxy and upgraded connections are never reads' : ' is not a read';
    return refuse('read_only', info, upgrade, why);
  }
  if (!info.isResourceRequest) {
    if (c.namespaces !== undefined && !read)
      return refuse('namespaces', info, upgrade, ': only GET and HEAD are allowed on non-resource paths when namespaces are restricted');
    return ALLOWED;
  }

  const sub = info.verb === 'proxy' ? 'proxy' : info.subresource.toLowerCase();
  if (sub !== '' && c.denySubresources.has(sub)) return refuse('deny_subresources', info, upgrade, `: the subresource ${quote(sub)} is denied`);

  const resource = info.resource.toLowerCase();
  if (c.denyAnyGroup.has(resource)) return refuse('deny_resources', info, upgrade, `: the resource ${quote(resource)} is denied`);
  if (info.apiGroup !== '' && c.denyInGroup.size > 0) {
    const qualified = `${resource}.${info.apiGroup.toLowerCase()}`;
    if (c.denyInGroup.has(qualified)) return refuse('deny_resources', info, upgrade, `: the resource ${quote(qualified)} is denied`);
  }

  if (c.namespaces === undefined) return ALLOWED;
  if (info.namespace !== '') {
    if (!c.namespaces.has(info.namespace))
      return refuse('namespaces', info, upgrade, `: the namespace is not one of the allowed namespaces (${c.namespaceList})`);
    // `/api/v1/namespaces/NS` is the Namespace object: cluster-scoped, so writes are refused even for an allowed NS.
    if (!read && info.apiGroup === '' && info.resource === 'namespaces') {
      return refuse('namespaces', info, upgrade, ': only reads are allowed on Namespace objects when namespaces are restricted');
    }
    return ALLOWED;
  }
  if (clusterScoped(info, opts)) {
    return read ? ALLOWED : refuse('namespaces', info, upgrade, ': only reads are allowed on cluster-scoped resources when namespaces are restricted');
  }
  return refuse('namespaces', info, upgrade, ` across all namespaces: only the namespaces ${c.namespaceList} are allowed`);
}

function clusterScoped(info: RequestInfo, opts: EvaluatePolicyOptions | undefined): boolean {
  const answer = opts?.isClusterScoped?.(info.apiGroup, info.resource);
  if (answer !== undefined) return answer;
  return clusterScopedResources.has(info.apiGroup === '' ? info.resource : `${info.resource}.${info.apiGroup}`);
}

function refuse(rule: PolicyRule, info: RequestInfo, upgrade: boolean, why: string): PolicyDecision {
  return { allowed: false, rule, message: `forbidden by the cluster owner's agent policy (rule ${rule}): ${describe(info, upgrade)}${why}` };
}

/** `create on configmaps in namespace "default"`, `get on pods/exec "web-0" in namespace "ns" (upgrade)`, `POST "/logs"`. */
function describe(info: RequestInfo, upgrade: boolean): string {
  const suffix = upgrade ? ' (upgrade)' : '';
  if (!info.isResourceRequest) return `${label(info.verb.toUpperCase())} ${quote(info.path)}${suffix}`;
  let target = info.resource === '' ? 'no resource' : label(info.resource);
  if (info.apiGroup !== '') target += `.${label(info.apiGroup)}`;
  if (info.subresource !== '') target += `/${label(info.subresource)}`;
  if (info.name !== '') target += ` ${quote(info.name)}`;
  if (info.namespace !== '') target += ` in namespace ${quote(info.namespace)}`;
  return `${info.verb === '' ? 'a request' : label(info.verb)} on ${target}${suffix}`;
}

/** A name as it is when it looks like one, quoted otherwise. */
function label(s: string): string {
  return /^[A-Za-z0-9._-]{1,256}$/.test(s) ? s : quote(s);
}

function clip(s: string): string {
  return s.length > MAX_QUOTED_CHARS ? `${s.slice(0, MAX_QUOTED_CHARS)}…` : s;
}

/** JSON-quoted, so control characters from a decoded path cannot forge a message. */
function quote(s: string): string {
  return JSON.stringify(clip(s));
}
