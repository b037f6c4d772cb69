// The fake API server's stand-in for RBAC self-review (a test double, not an
// authorizer: it answers whatever rules the test configured, for every
// caller, and enforces nothing on the other routes):
//   POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews   the rules
//   POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews  allowed or not, by those rules
//   PUT  /testkit/rbac                                           configure the rules (setFakeRbac)
import { request } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FakeApiServer } from './fake-apiserver.ts';
import type { RouteContext } from './fake-apiserver-routes.ts';

/** One `resourceRules` entry, as in `SelfSubjectRulesReview.status`. */
export interface FakeResourceRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
}

/** One `nonResourceRules` entry. */
export interface FakeNonResourceRule {
  verbs: string[];
  nonResourceURLs?: string[];
}

/** What the fake answers to self-reviews. */
export interface FakeRbacRules {
  resourceRules: FakeResourceRule[];
  nonResourceRules: FakeNonResourceRule[];
}

/** The rules of a fake that was not configured: everything, like `cluster-admin`. */
export const FAKE_RBAC_ALL: FakeRbacRules = {
  resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }],
  nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }],
};

const AUTHZ = '/apis/authorization.k8s.io/v1/';

/** Answers the self-review and `/testkit/rbac` routes; false when the request is not one of them. */
export function handleRbacRoute(req: IncomingMessage, res: ServerResponse, path: string, ctx: RouteContext): boolean {
  const method = req.method ?? 'GET';
  if (method === 'PUT' && path === '/testkit/rbac') {
    void readJson(req).then(
      (body) => {
        ctx.rbac = body as FakeRbacRules;
        send(res, 200, ctx.rbac);
      },
      () => send(res, 400, { message: 'not JSON' }),
    );
    return true;
  }
  if (method !== 'POST' || !path.startsWith(AUTHZ)) return false;
  const kind = path.slice(AUTHZ.length);
  if (kind !== 'selfsubjectrulesreviews' && kind !== 'selfsubjectaccessreviews') return false;
  void readJson(req).then(
    (body) => {
      const rules = ctx.rbac ?? FAKE_RBAC_ALL;
      const review = body as { spec?: Record<string, unknown> };
      if (kind === 'selfsubjectrulesreviews') {
        send(res, 201, {
          kind: 'SelfSubjectRulesReview',
          apiVersion: 'authorization.k8s.io/v1',
          metadata: {},
          spec: review.spec ?? {},
          status: { resourceRules: rules.resourceRules, nonResourceRules: rules.nonResourceRules, incomplete: false },
        });
        return;
      }
      send(res, 201, {
        kind: 'SelfSubjectAccessReview',
        apiVersion: 'authorization.k8s.io/v1',
        metadata: {},
        spec: review.spec ?? {},
        status: { allowed: allowed(rules, review.spec ?? {}) },
      });
    },
    () => send(res, 400, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'body is not JSON', reason: 'BadRequest', code: 400 }),
  );
  return true;
}

/** Sets the rules `fake` answers from now on (through its `PUT /testkit/rbac`). */
export async function setFakeRbac(fake: Pick<FakeApiServer, 'url' | 'token' | 'caCert'>, rules: FakeRbacRules): Promise<void> {
  const body = JSON.stringify(rules);
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(
      `${fake.url}/testkit/rbac`,
      {
        method: 'PUT',
        ca: fake.caCert,
        headers: { authorization: `Bearer ${fake.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end(body);
  });
  if (status !== 200) throw new Error(`setFakeRbac: the fake answered ${String(status)}`);
}

const has = (list: string[] | undefined, value: string): boolean => list !== undefined && (list.includes('*') || list.includes(value));

/** The access review's answer by the configured rules (exact names and `*` only). */
function allowed(rules: FakeRbacRules, spec: Record<string, unknown>): boolean {
  const ra = spec.resourceAttributes as { verb?: string; group?: string; resource?: string; subresource?: string; name?: string } | undefined;
  if (ra !== undefined) {
    const resource = ra.subresource !== undefined && ra.subresource !== '' ? `${ra.resource ?? ''}/${ra.subresource}` : (ra.resource ?? '');
    return rules.resourceRules.some(
      (r) =>
        has(r.verbs, ra.verb ?? '') &&
        has(r.apiGroups, ra.group ?? '') &&
        has(r.resources, resource) &&
        (r.resourceNames === undefined || r.resourceNames.length === 0 || (ra.name !== undefined && r.resourceNames.includes(ra.name))),
    );
  }
  const na = spec.nonResourceAttributes as { verb?: string; path?: string } | undefined;
  return na !== undefined && rules.nonResourceRules.some((r) => has(r.verbs, na.verb ?? '') && has(r.nonResourceURLs, na.path ?? ''));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
