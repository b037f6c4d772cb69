// The trust boundary (issue 9): who the API server sees, and what a runner
// may not choose. The fixture is in harness/trust.ts.
//
// - access_as runner: through the `e2e-as-runner` agent the API server sees
//   `pipeops:runner:runner-1` in groups pipeops:runners and e2e-team; its
//   RBAC (a Role in one namespace) decides, and a refusal is the API server's
//   own 403 naming that user. `direct` is the agent's credential with the
//   same Impersonate-* headers, so the transcripts compare.
// - Audit-ID: the tunnel's request id reaches the API server as `Audit-ID`
//   and is the `auditID` of the audit log's event.
// - Runner-sent Impersonate-* headers: refused by the tunnel with a 403
//   Status naming the header; the request never reaches the API server.
// - Owner policy (`e2e-policy`, `e2e-policy-readonly`): refusals are the
//   agent's 403 Status naming the rule; what the policy allows works.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { AuditLog, describeEvent } from '../harness/audit.ts';
import { until } from '../harness/proc.ts';
import { CLUSTER_NAMES, type ClusterKind } from '../harness/env.ts';
import { check, type Ctx, type Scenario } from '../harness/scenario.ts';
import { POLICY_NAMESPACE, RUNNER_USER, TEAM_NAMESPACE } from '../harness/trust.ts';

const REQUEST_ID = 'x-pipeops-request-id';
const POLICY_PHRASE = "cluster owner's agent policy";
const NO_AGENT = 'the policy is enforced by the agent; the API server itself has none';
const TUNNEL_RULE = "the API server itself honours Impersonate-* (checking the caller's impersonate permission); refusing them is the tunnel's rule";

/** A Kubernetes Status body, parsed; fails the scenario when the body is not one. */
function status(body: Buffer): { kind: string; status: string; reason: string; code: number; message: string } {
  const s = JSON.parse(body.toString()) as { kind: string; status: string; reason: string; code: number; message: string };
  check(s.kind === 'Status', `not a Status: ${body.toString().slice(0, 300)}`);
  return s;
}

/** `text` contains `word`, any case (a header name may be relayed lower-cased). */
const names = (text: string, word: string) => text.toLowerCase().includes(word.toLowerCase());

/** A 403 Status, reason Forbidden, whose message contains every one of `words`: its transcript line. */
function forbidden(what: string, r: { status: number; headers: Record<string, unknown>; body: Buffer }, words: string[]): string {
  check(r.status === 403, `${what}: status ${r.status} ${r.body.toString().slice(0, 300)}`);
  check(String(r.headers['content-type']).startsWith('application/json'), `${what}: content-type ${String(r.headers['content-type'])}`);
  const s = status(r.body);
  check(s.status === 'Failure' && s.reason === 'Forbidden' && s.code === 403, `${what}: ${JSON.stringify(s)}`);
  for (const w of words) check(names(s.message, w), `${what}: message does not name ${w}: ${s.message}`);
  return `${what} → 403 Forbidden: ${s.message}`;
}

/** kubectl failed with a server refusal whose text contains every one of `words`. */
function refused(what: string, out: string, words: string[]): string {
  check(/Forbidden|forbidden/.test(out), `${what}: not a Forbidden refusal: ${out}`);
  for (const w of words) check(names(out, w), `${what}: does not name ${w}: ${out}`);
  return `${what} → ${out.trim()}`;
}

/** A WebSocket handshake's headers (what kubectl exec sends first, protocol v5). */
const WS_UPGRADE = {
  connection: 'Upgrade',
  upgrade: 'websocket',
  'sec-websocket-version': '13',
  'sec-websocket-key': randomBytes(16).toString('base64'),
  'sec-websocket-protocol': 'v5.channel.k8s.io',
};

/** `p`, or a failure naming `what` after `ms`. */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

const sane = (prefix: string) => `${prefix}-${randomBytes(6).toString('hex')}`;

// ---------------------------------------------------------------- access_as

const accessAsScenarios: Scenario[] = [
  {
    name: "access_as runner: the runner's RBAC decides",
    group: 'trust',
    cluster: 'as-runner',
    async run(ctx) {
      const out = [
        await ctx.k(['auth', 'whoami']),
        await ctx.k(['get', 'pods', '-n', TEAM_NAMESPACE]),
        await ctx.k(['create', 'configmap', 'team-note', '-n', TEAM_NAMESPACE, '--from-literal=by=runner']),
        await ctx.k(['get', 'configmap', 'team-note', '-n', TEAM_NAMESPACE, '-o', 'jsonpath={.data}']),
        await ctx.k(['delete', 'configmap', 'team-note', '-n', TEAM_NAMESPACE]),
        await ctx.k(['logs', 'team-app', '-n', TEAM_NAMESPACE, '--tail=1']),
        await ctx.k(['auth', 'can-i', 'list', 'pods', '-n', TEAM_NAMESPACE]),
        await ctx.k(['auth', 'can-i', 'list', 'pods', '-n', ctx.ns], { expect: 1 }),
      ];
      check(out[0]?.includes(RUNNER_USER) === true && out[0].includes('e2e-team') && out[0].includes('pipeops:runners'), `whoami: ${out[0]}`);
      check(/team-app\s+1\/1\s+Running/.test(out[1] ?? ''), `pods in ${TEAM_NAMESPACE}: ${out[1]}`);
      // outside the one namespace: the API server's own 403, naming the runner's user
      const other = await ctx.k(['get', 'pods', '-n', ctx.ns], { expect: 1 });
      out.push(refused(`get pods -n ${ctx.ns}`, other, [`User "${RUNNER_USER}"`, 'cannot list resource "pods"']));
      const secrets = await ctx.k(['get', 'secrets', '-n', TEAM_NAMESPACE], { expect: 1 });
      out.push(refused('get secrets', secrets, [`User "${RUNNER_USER}"`]));
      const ns = await ctx.k(['create', 'namespace', `nope-${ctx.t.name}`], { expect: 1 });
      out.push(refused('create namespace', ns.replace(`nope-${ctx.t.name}`, 'nope-<target>'), [`User "${RUNNER_USER}"`]));
      out.push(forbidden(`GET pods in ${ctx.ns}`, await ctx.t.http(`/api/v1/namespaces/${ctx.ns}/pods`), [`User "${RUNNER_USER}"`]));
      return out.join('\n');
    },
  },
  {
    name: 'access_as runner: Audit-ID is the request id',
    group: 'trust',
    cluster: 'as-runner',
    async run(ctx) {
      // direct: the API server takes a client's Audit-ID as is; through the tunnel the runner sends
      // x-pipeops-request-id and the tunnel sends it on as Audit-ID
      const audit = new AuditLog(ctx.env.cluster.auditLog);
      const id = sane('e2e-audit');
      const header = ctx.t.name === 'direct' ? 'audit-id' : REQUEST_ID;
      const r = await ctx.t.http(`/api/v1/namespaces/${TEAM_NAMESPACE}/pods?limit=1`, { headers: { [header]: id } });
      check(r.status === 200, `list: ${r.status} ${r.body.toString().slice(0, 300)}`);
      check(r.headers['audit-id'] === id, `response Audit-Id ${String(r.headers['audit-id'])}, sent ${id}`);
      if (ctx.t.name !== 'direct') check(r.headers[REQUEST_ID] === id, `response ${REQUEST_ID} ${String(r.headers[REQUEST_ID])}, sent ${id}`);
      const e = await audit.waitFor(id);
      check(e.impersonatedUser?.username === RUNNER_USER, `audit event user ${JSON.stringify(e.user)} as ${JSON.stringify(e.impersonatedUser)}`);
      return [`response Audit-Id: <sent id>`, `audit: ${describeEvent(e).replace(id, '<id>')}`].join('\n');
    },
  },
  {
    name: "Audit-ID: the gateway's id replaces a bad or forged one",
    group: 'trust',
    cluster: 'as-runner',
    notOn: { direct: "x-pipeops-request-id is the tunnel's header; the API server takes any client Audit-ID" },
    async run(ctx) {
      const audit = new AuditLog(ctx.env.cluster.auditLog);
      const out: string[] = [];
      // not a sane request id: the gateway makes its own (a UUID), answers with it, and that is the auditID
      const bad = await ctx.t.http('/version', { headers: { [REQUEST_ID]: 'not sane: spaces and ;' } });
      check(bad.status === 200, `/version: ${bad.status}`);
      const given = String(bad.headers[REQUEST_ID]);
      check(/^[0-9a-f-]{36}$/.test(given), `gateway request id ${given}`);
      const e1 = await audit.waitFor(given);
      out.push(`insane id → gateway id; audit: ${describeEvent(e1).replace(given, '<id>')}`);
      // a runner-sent Audit-ID does not choose the API server's auditID: the request id does
      const id = sane('e2e-audit');
      const forged = sane('forged');
      const r = await ctx.t.http(`/api/v1/namespaces/${TEAM_NAMESPACE}/configmaps?limit=1`, { headers: { [REQUEST_ID]: id, 'audit-id': forged } });
      check(r.status === 200, `list: ${r.status} ${r.body.toString().slice(0, 300)}`);
      const e2 = await audit.waitFor(id);
      check(audit.events(forged).length === 0, `the runner's Audit-ID ${forged} reached the audit log`);
      out.push(`runner Audit-ID ignored; audit: ${describeEvent(e2).replace(id, '<id>')}`);
      return out.join('\n');
    },
  },
];

// ------------------------------------------------------ runner impersonation

async function impersonationRefused(ctx: Ctx): Promise<string> {
  await ctx.env.pod(ctx.ns, 'box');
  // Discovery first, without --as: with a cold discovery cache kubectl's first request is
  // GET /api, and client-go prints a refused discovery as "Error from server (Forbidden):
  // unknown" whatever the Status says (the API server's own refusal too)
  await ctx.k(['api-resources', '-o', 'name']);
  const out: string[] = [];
  const as = await ctx.k(['--as=jane', 'get', 'pods', '-n', ctx.ns], { expect: 1 });
  out.push(refused('--as=jane get pods', as, ['Impersonate-User']));
  const group = await ctx.k(['--as=jane', '--as-group=system:masters', 'get', 'pods', '-n', ctx.ns], { expect: 1 });
  out.push(refused('--as=jane --as-group=system:masters get pods', group, ['Impersonate-']));
  const exec = await ctx.t.kubectl(['--as=jane', 'exec', 'box', '-n', ctx.ns, '--', 'echo', 'reached']);
  check(exec.code !== 0 && !exec.stdout.includes('reached'), `exec as jane: ${exec.code} ${exec.stdout}`);
  out.push(refused('--as=jane exec', exec.stderr, ['Impersonate-User']));
  // kubectl stops at its GET of the pod: the upgrade itself, as a raw WebSocket handshake
  // (an answered upgrade has no 'response' event: the timeout reports it)
  out.push(
    forbidden(
      'exec upgrade with Impersonate-User',
      await within(
        10_000,
        'the exec handshake to be refused',
        ctx.t.http(`/api/v1/namespaces/${ctx.ns}/pods/box/exec?command=true&stdout=true`, {
          headers: { ...WS_UPGRADE, 'Impersonate-User': 'jane' },
        }),
      ),
      ['Impersonate-User'],
    ),
  );
  const path = `/api/v1/namespaces/${ctx.ns}/pods`;
  for (const [h, v] of [
    ['Impersonate-Group', 'system:masters'],
    ['Impersonate-Uid', '0'],
    ['Impersonate-Extra-Scopes', 'all'],
    ['impersonate-user', 'system:admin'],
  ] as const) {
    out.push(forbidden(`GET with ${h}`, await ctx.t.http(path, { headers: { [h]: v } }), [h]));
  }
  // never at the API server: the refused request's id is not in the audit log, a later one's is
  const audit = new AuditLog(ctx.env.cluster.auditLog);
  const refusedId = sane('e2e-refused');
  const markId = sane('e2e-mark');
  out.push(
    forbidden('GET with Impersonate-User (audit check)', await ctx.t.http(path, { headers: { 'Impersonate-User': 'jane', [REQUEST_ID]: refusedId } }), [
      'Impersonate-User',
    ]),
  );
  const mark = await ctx.t.http('/version', { headers: { [REQUEST_ID]: markId } });
  check(mark.status === 200, `the request after a refused one: ${mark.status} ${mark.body.toString().slice(0, 300)}`);
  await audit.waitFor(markId);
  check(audit.events(refusedId).length === 0, `the refused request ${refusedId} reached the API server`);
  out.push('refused request not in the audit log; the next one is');
  return out.join('\n').replace(/\n?\s*$/, '');
}

/** The JSON protocol (/ws/k8s): a message with an Impersonate-* header gets a refusal, the socket keeps serving. */
async function impersonationOverJsonProtocol(ctx: Ctx, cluster: string): Promise<string> {
  const { tunnel } = ctx.env;
  const ws = new WebSocket(`${tunnel.gatewayUrl.replace(/^https/, 'wss')}/ws/k8s?cluster=${cluster}`, {
    ca: readFileSync(tunnel.caFile, 'utf8'),
    headers: { authorization: `Bearer ${tunnel.runnerToken}` },
  });
  const inbox: Array<Record<string, unknown>> = [];
  ws.on('message', (d) => {
    inbox.push(JSON.parse(String(d)) as Record<string, unknown>);
  });
  const send = async (msg: Record<string, unknown>) => {
    ws.send(JSON.stringify(msg));
    // the reply head (status) of this message id; the harness waits for it, at most 30 s
    return await until(
      `/ws/k8s reply to ${String(msg.id)}`,
      async () => inbox.find((m) => m.id === msg.id && (m.status !== undefined || m.error !== undefined)),
      30_000,
      20,
    );
  };
  try {
    await once(ws, 'open');
    const no = await send({ id: 'imp-1', method: 'GET', path: `/api/v1/namespaces/${ctx.ns}/pods`, headers: { 'Impersonate-User': 'jane' } });
    check(no.status === 403 && names(JSON.stringify(no), 'Impersonate-User'), `/ws/k8s with Impersonate-User: ${JSON.stringify(no).slice(0, 400)}`);
    const yes = await send({ id: 'after-1', method: 'GET', path: '/version' });
    check(yes.status === 200, `/ws/k8s after the refusal: ${JSON.stringify(yes).slice(0, 300)}`);
    return `/ws/k8s Impersonate-User → ${String(no.status)}; next message → ${String(yes.status)}`;
  } finally {
    ws.close();
  }
}

const impersonationScenarios: Scenario[] = (['full', 'as-runner'] as ClusterKind[]).map((cluster) => ({
  name: `runner Impersonate-* refused (${cluster === 'full' ? 'access_as agent' : 'access_as runner'})`,
  group: 'trust',
  cluster,
  notOn: { direct: TUNNEL_RULE },
  async run(ctx: Ctx) {
    const lines = [await impersonationRefused(ctx)];
    if (ctx.t.name === 'gateway') lines.push(await impersonationOverJsonProtocol(ctx, CLUSTER_NAMES[cluster]));
    return lines.join('\n');
  },
}));

// ------------------------------------------------------------- owner policy

const policyScenarios: Scenario[] = [
  {
    name: 'policy: exec refused (deny_subresources)',
    group: 'trust',
    cluster: 'policy',
    notOn: { direct: NO_AGENT },
    async run(ctx) {
      const out: string[] = [];
      const exec = await ctx.t.kubectl(['exec', 'allowed-app', '-n', POLICY_NAMESPACE, '--', 'echo', 'reached']);
      check(exec.code !== 0 && !exec.stdout.includes('reached'), `exec: ${exec.code} ${exec.stdout}`);
      out.push(refused('kubectl exec', exec.stderr, [POLICY_PHRASE, 'deny_subresources']));
      const spdy = await ctx.t.kubectl(['exec', 'allowed-app', '-n', POLICY_NAMESPACE, '--', 'echo', 'reached'], {
        env: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' },
      });
      check(spdy.code !== 0 && !spdy.stdout.includes('reached'), `exec (SPDY): ${spdy.code} ${spdy.stdout}`);
      out.push(refused('kubectl exec (SPDY)', spdy.stderr, [POLICY_PHRASE, 'deny_subresources']));
      out.push(
        forbidden(
          'POST pods/exec',
          await ctx.t.http(`/api/v1/namespaces/${POLICY_NAMESPACE}/pods/allowed-app/exec?command=true&stdout=true`, { method: 'POST' }),
          [POLICY_PHRASE, 'deny_subresources'],
        ),
      );
      // what the policy does not deny still works: logs, reads
      out.push(await ctx.k(['logs', 'allowed-app', '-n', POLICY_NAMESPACE, '--tail=1']));
      out.push(await ctx.k(['get', 'pods', '-n', POLICY_NAMESPACE]));
      check(/allowed-app\s+1\/1\s+Running/.test(out.at(-1) ?? ''), `pods: ${out.at(-1)}`);
      return out.join('\n');
    },
  },
  {
    name: 'policy: secrets refused (deny_resources)',
    group: 'trust',
    cluster: 'policy',
    notOn: { direct: NO_AGENT },
    async run(ctx) {
      const out: string[] = [];
      out.push(refused('get secrets', await ctx.k(['get', 'secrets', '-n', POLICY_NAMESPACE], { expect: 1 }), [POLICY_PHRASE, 'deny_resources']));
      out.push(
        refused('create secret', await ctx.k(['create', 'secret', 'generic', 'nope', '-n', POLICY_NAMESPACE, '--from-literal=k=v'], { expect: 1 }), [
          POLICY_PHRASE,
          'deny_resources',
        ]),
      );
      out.push(forbidden('GET secrets', await ctx.t.http(`/api/v1/namespaces/${POLICY_NAMESPACE}/secrets`), [POLICY_PHRASE, 'deny_resources']));
      out.push(await ctx.k(['get', 'configmaps', '-n', POLICY_NAMESPACE, '-o', 'name']));
      return out.join('\n');
    },
  },
  {
    name: 'policy: namespaces allow list',
    group: 'trust',
    cluster: 'policy',
    notOn: { direct: NO_AGENT },
    async run(ctx) {
      const out: string[] = [];
      // inside the allow list: reads and writes work
      out.push(await ctx.k(['get', 'pods', '-n', POLICY_NAMESPACE]));
      out.push(await ctx.k(['create', 'configmap', `policy-${ctx.t.name}`, '-n', POLICY_NAMESPACE, '--from-literal=k=v']));
      out.push(await ctx.k(['delete', 'configmap', `policy-${ctx.t.name}`, '-n', POLICY_NAMESPACE]));
      // outside: refused by the agent, naming the rule; nothing created
      out.push(
        refused(`create configmap -n ${ctx.ns}`, await ctx.k(['create', 'configmap', 'outside', '-n', ctx.ns, '--from-literal=k=v'], { expect: 1 }), [
          POLICY_PHRASE,
          'namespaces',
        ]),
      );
      out.push(
        forbidden(
          `POST configmaps in ${ctx.ns}`,
          await ctx.t.http(`/api/v1/namespaces/${ctx.ns}/configmaps`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'outside-raw' } }),
          }),
          [POLICY_PHRASE, 'namespaces'],
        ),
      );
      const left = await ctx.env.cluster.admin(['get', 'configmaps', '-n', ctx.ns, '-o', 'name']);
      check(!left.stdout.includes('outside'), `created outside the allow list: ${left.stdout}`);
      // so is a list across all namespaces
      out.push(refused('get pods -A', await ctx.k(['get', 'pods', '-A'], { expect: 1 }), [POLICY_PHRASE, 'namespaces']));
      // a cluster-scoped write is refused while an allow list is set
      const nsName = `policy-nope-${ctx.t.name}`;
      out.push(
        refused('create namespace', (await ctx.k(['create', 'namespace', nsName], { expect: 1 })).replaceAll(nsName, 'policy-nope-<target>'), [
          POLICY_PHRASE,
          'namespaces',
        ]),
      );
      return out.join('\n');
    },
  },
  {
    name: 'policy: read_only',
    group: 'trust',
    cluster: 'policy-readonly',
    notOn: { direct: NO_AGENT },
    async run(ctx) {
      await ctx.env.cluster.admin(['create', 'configmap', 'visible', '-n', ctx.ns, '--from-literal=x=1']);
      const out: string[] = [];
      out.push(await ctx.k(['get', 'configmaps', '-n', ctx.ns, '-o', 'name']));
      out.push(await ctx.k(['get', 'pods', '-n', POLICY_NAMESPACE]));
      out.push(
        refused('create configmap', await ctx.k(['create', 'configmap', 'denied', '-n', ctx.ns, '--from-literal=x=1'], { expect: 1 }), [
          POLICY_PHRASE,
          'read_only',
        ]),
      );
      out.push(refused('label configmap', await ctx.k(['label', 'configmap', 'visible', '-n', ctx.ns, 'x=y'], { expect: 1 }), [POLICY_PHRASE, 'read_only']));
      out.push(refused('delete configmap', await ctx.k(['delete', 'configmap', 'visible', '-n', ctx.ns], { expect: 1 }), [POLICY_PHRASE, 'read_only']));
      // exec is never a read, whatever its method
      const exec = await ctx.t.kubectl(['exec', 'allowed-app', '-n', POLICY_NAMESPACE, '--', 'echo', 'reached']);
      check(exec.code !== 0 && !exec.stdout.includes('reached'), `exec: ${exec.code} ${exec.stdout}`);
      out.push(refused('kubectl exec', exec.stderr, [POLICY_PHRASE, 'read_only']));
      out.push(
        forbidden('DELETE configmap', await ctx.t.http(`/api/v1/namespaces/${ctx.ns}/configmaps/visible`, { method: 'DELETE' }), [POLICY_PHRASE, 'read_only']),
      );
      const still = await ctx.env.cluster.admin(['get', 'configmap', 'visible', '-n', ctx.ns, '-o', 'name']);
      check(still.code === 0, `the configmap is gone: ${still.stderr}`);
      return out.join('\n');
    },
  },
];

export const trustScenarios: Scenario[] = [...accessAsScenarios, ...impersonationScenarios, ...policyScenarios];
