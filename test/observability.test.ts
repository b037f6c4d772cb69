// Issue 12, item 6: the observability artefacts we ship (deploy/observability:
// the Grafana dashboard and the Prometheus alert rules) read only metrics a
// real gateway and a real agent expose, with the labels those metrics carry.
// A renamed metric, a misspelled one, `_bucket` on a counter, or `by (reasons)`
// fails here instead of leaving an empty panel or an alert that never fires.
//
// The metrics come from real processes: the testkit's Kubernetes path (the
// real gateway and the real agent in this process, one runner request allowed
// and one refused by the owner's policy so that labelled series exist), plus
// the `pipeops-tunnel gateway` command as a child, which adds what only the
// shipped process registers (pipeops_tunnel_uncaught_errors_total).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import { request, type Dispatcher } from 'undici';
import { parse as parseYaml } from 'yaml';
import { createAgent } from '@pipeops/tunnel-agent';
import { KUBE_PATH, spawnLogged, startKubePath, testCertificates, waitFor } from '@pipeops/tunnel-testkit';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DASHBOARD = join(ROOT, 'deploy/observability/grafana-dashboard.json');
const ALERTS = join(ROOT, 'deploy/observability/alerts.yaml');
const CLI = join(ROOT, 'packages/cli/bin/pipeops-tunnel.js');

/** Labels Prometheus adds to every series of a target (job, instance) or that relabelling commonly adds (cluster). */
const TARGET_LABELS = new Set(['job', 'instance', 'cluster']);
/** Sample suffixes of a histogram (or summary) family. */
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;

type Side = 'gateway' | 'agent';

/** What the scrapes say of one metric family: its type on each side that exposes it, and its labels. */
interface Family {
  types: Map<Side, string>;
  labels: Set<string>;
  labelsKnown: boolean;
}
type Exposed = Map<string, Family>;

/**
 * The family a sample name belongs to: itself, or a histogram's
 * `_bucket`/`_sum`/`_count`, with the sides that expose it so (the agent's
 * pipeops_tunnel_session_rtt_seconds is a gauge, the gateway's a histogram).
 */
function resolve(name: string, exposed: Exposed): { family: Family; sides: Side[]; bucket: boolean } | undefined {
  const f = exposed.get(name);
  if (f !== undefined) return { family: f, sides: [...f.types.keys()], bucket: false };
  const suffix = HISTOGRAM_SUFFIXES.find((s) => name.endsWith(s));
  const base = suffix === undefined ? undefined : exposed.get(name.slice(0, -suffix.length));
  const sides = [...(base?.types ?? [])].filter(([, type]) => type === 'histogram').map(([side]) => side);
  return base === undefined || sides.length === 0 ? undefined : { family: base, sides, bucket: suffix === '_bucket' };
}

/** Adds one Prometheus text exposition (and optionally the registry behind it) to `into`. */
function addExposition(into: Exposed, side: Side, text: string, registry?: Registry): void {
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) {
      const [, name = '', kind = ''] = type;
      const f = into.get(name) ?? { types: new Map<Side, string>(), labels: new Set<string>(), labelsKnown: false };
      f.types.set(side, kind);
      into.set(name, f);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+/.exec(line);
    const f = sample === null ? undefined : resolve(sample[1] ?? '', into)?.family;
    if (f === undefined) continue;
    f.labelsKnown = true;
    for (const m of (sample?.[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) f.labels.add(m[1] ?? '');
  }
  for (const metric of registry?.getMetricsAsArray() ?? []) {
    // prom-client keeps each metric's label names on the object (not in its typings).
    const { name, labelNames } = metric as unknown as { name: string; labelNames?: readonly string[] };
    assert.ok(Array.isArray(labelNames), `prom-client no longer exposes labelNames on ${name}`);
    const f = into.get(name);
    if (f === undefined) continue;
    for (const l of labelNames) f.labels.add(l);
    f.labelsKnown = true;
  }
}

/** A PromQL expression (or Grafana query) of an artefact, and where it is. */
interface Query {
  where: string;
  expr: string;
}

/** Every `expr` of the dashboard's panels (rows' nested panels too) and every query of its template variables. */
function dashboardQueries(dashboard: unknown): Query[] {
  type Panel = { title?: unknown; targets?: Array<{ expr?: unknown }>; panels?: Panel[] };
  const d = dashboard as { panels?: Panel[]; templating?: { list?: Array<{ name?: unknown; type?: unknown; definition?: unknown }> } };
  const out: Query[] = [];
  const visit = (panel: Panel): void => {
    for (const target of panel.targets ?? []) if (typeof target.expr === 'string') out.push({ where: `panel "${String(panel.title)}"`, expr: target.expr });
    for (const nested of panel.panels ?? []) visit(nested);
  };
  for (const panel of d.panels ?? []) visit(panel);
  for (const v of d.templating?.list ?? []) {
    if (v.type === 'query' && typeof v.definition === 'string') out.push({ where: `variable $${String(v.name)}`, expr: v.definition });
  }
  return out;
}

interface AlertRule {
  alert?: unknown;
  expr?: unknown;
  for?: unknown;
  labels?: { severity?: unknown };
  annotations?: Record<string, unknown>;
}

/** The rules of a Prometheus rules file, with the group they are in. */
function alertRules(doc: unknown): Array<{ group: string; rule: AlertRule }> {
  const groups = (doc as { groups?: unknown }).groups;
  assert.ok(Array.isArray(groups) && groups.length > 0, 'alerts.yaml has groups');
  return groups.flatMap((g: { name?: unknown; rules?: unknown }) => {
    assert.equal(typeof g.name, 'string', 'every group has a name');
    assert.ok(Array.isArray(g.rules) && g.rules.length > 0, `group ${String(g.name)} has rules`);
    return (g.rules as AlertRule[]).map((rule) => ({ group: String(g.name), rule }));
  });
}

/** The `pipeops_*` names in a text that no scraped family (nor a histogram's `_bucket`/`_sum`/`_count`) accounts for. */
function unknownMetrics(text: string, exposed: Exposed): string[] {
  const problems: string[] = [];
  for (const [name] of text.matchAll(/\bpipeops_[a-z0-9_]+/g)) {
    if (resolve(name, exposed) === undefined) problems.push(name);
  }
  return [...new Set(problems)];
}

/**
 * Label problems of one PromQL expression: a label in `metric{…}` that the
 * metric does not carry, a label in `by`/`without`/`on`/`ignoring` that no
 * metric of the expression carries, a label_values() label likewise, and a
 * selector on `$gateway_job`/`$agent_job` whose metric that side does not expose.
 */
function labelProblems(q: Query, exposed: Exposed): string[] {
  const problems: string[] = [];
  const used: Array<{ labels: Set<string>; known: boolean }> = [];
  for (const m of q.expr.matchAll(/\b(pipeops_[a-z0-9_]+)(?:\s*\{([^}]*)\})?/g)) {
    const [, name = '', matchers = ''] = m;
    const r = resolve(name, exposed);
    if (r === undefined) continue; // reported by unknownMetrics
    const labels = new Set([...r.family.labels, ...TARGET_LABELS, ...(r.bucket ? ['le'] : [])]);
    used.push({ labels, known: r.family.labelsKnown });
    for (const [, label = ''] of matchers.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"/g)) {
      if (r.family.labelsKnown && !labels.has(label)) problems.push(`${name} has no label "${label}"`);
    }
    for (const side of ['gateway', 'agent'] as const) {
      if (matchers.includes(`$${side}_job`) && !r.sides.includes(side)) problems.push(`${name} is selected on $${side}_job but the ${side} does not expose it`);
    }
  }
  const grouping = [...q.expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)].flatMap((m) => (m[1] ?? '').split(','));
  const labelValues = [...q.expr.matchAll(/label_values\((?:[^{},]|\{[^}]*\})*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/g)].map((m) => m[1] ?? '');
  for (const label of [...grouping, ...labelValues].map((l) => l.trim()).filter((l) => l !== '')) {
    if (!used.every((u) => u.known)) continue; // one metric's labels are unknown: it may carry it
    if (!used.some((u) => u.labels.has(label))) problems.push(`no metric of the expression has label "${label}"`);
  }
  return problems;
}

/** GET a /metrics page: its text, after checking the status and content type. */
async function scrape(url: string, dispatcher?: Dispatcher): Promise<string> {
  const res = await request(url, dispatcher === undefined ? {} : { dispatcher });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `${url}: ${text.slice(0, 200)}`);
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  return text;
}

/** Starts `pipeops-tunnel gateway` as a child on 127.0.0.1:0; resolves with its port once it logs gateway_listening. */
async function startCliGateway(t: TestContext): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'pipeops-observability-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certs = testCertificates();
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const args = [
    CLI,
    'gateway',
    '--listen',
    '127.0.0.1:0',
    '--tls-cert',
    file('tls.crt', certs.cert),
    '--tls-key',
    file('tls.key', certs.key),
    '--tokens',
    file('tokens.yaml', `agents: [{ cluster: c1, token: "${KUBE_PATH.agentToken}" }]\n`),
  ];
  const env: Record<string, string> = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR']) if (process.env[k] !== undefined) env[k] = process.env[k];
  const gateway = spawnLogged(process.execPath, args, { env });
  t.after(async () => {
    if (gateway.child.exitCode !== null || gateway.child.signalCode !== null) return;
    gateway.child.kill('SIGTERM');
    await gateway.exited;
  });
  const listening = await gateway.waitFor((r) => r.event === 'gateway_listening' && typeof r.port === 'number', 'pipeops-tunnel gateway listening');
  return listening.port as number;
}

/** The metrics of a real gateway and agent after a runner request got through and one was refused by the agent's policy. */
async function exposedMetrics(t: TestContext): Promise<Exposed> {
  const p = await startKubePath(t, { createAgent, agent: { policy: { denyResources: ['secrets'] } } });
  const auth = { authorization: `Bearer ${KUBE_PATH.runnerToken}` };
  const allowed = await request(`${p.clusterUrl()}/api/v1/namespaces/default/pods`, { dispatcher: p.dispatcher, headers: auth });
  await allowed.body.dump();
  assert.equal(allowed.statusCode, 200);
  const refused = await request(`${p.clusterUrl()}/api/v1/namespaces/default/secrets`, { dispatcher: p.dispatcher, headers: auth });
  await refused.body.dump();
  assert.equal(refused.statusCode, 403);

  const agentPort = p.agent.healthAddress?.port;
  assert.ok(agentPort !== undefined, 'the agent serves /metrics');
  // The gateway counts a request when its relay finishes, which may follow the runner's last byte.
  const gatewayText = await waitFor(
    async () => {
      const text = await scrape(`${p.gatewayUrl}/metrics`, p.dispatcher);
      return /^pipeops_tunnel_runner_requests_total\{code="2xx"\} 1$/m.test(text) && /^pipeops_tunnel_runner_requests_total\{code="4xx"\} 1$/m.test(text)
        ? text
        : undefined;
    },
    { what: 'the gateway to count both runner requests' },
  );
  const agentText = await waitFor(
    async () => {
      const text = await scrape(`http://127.0.0.1:${String(agentPort)}/metrics`);
      return /^pipeops_tunnel_policy_denied_total\{rule="deny_resources"\} 1$/m.test(text) &&
        /^pipeops_tunnel_k8s_requests_total\{verb="list",code="2xx"\} 1$/m.test(text)
        ? text
        : undefined;
    },
    { what: 'the agent to count the allowed and the refused request' },
  );
  const cliPort = await startCliGateway(t);
  const cliText = await scrape(`https://127.0.0.1:${String(cliPort)}/metrics`, p.dispatcher);

  const exposed: Exposed = new Map();
  addExposition(exposed, 'gateway', gatewayText, p.gatewayRegistry);
  addExposition(exposed, 'agent', agentText, p.agentRegistry);
  addExposition(exposed, 'gateway', cliText);
  return exposed;
}

const dashboardText = readFileSync(DASHBOARD, 'utf8');
const dashboard = JSON.parse(dashboardText) as unknown;
const alertsText = readFileSync(ALERTS, 'utf8');
const alerts = parseYaml(alertsText);

test('the dashboard and the alert rules read only metrics and labels a real gateway and agent expose', async (t) => {
  const exposed = await exposedMetrics(t);
  const queries = [
    ...dashboardQueries(dashboard),
    ...alertRules(alerts).map(({ rule }) => ({ where: `alert ${String(rule.alert)}`, expr: String(rule.expr) })),
  ];
  assert.ok(queries.length >= 40, `found ${String(queries.length)} queries`);

  await t.test('every pipeops_ metric named anywhere in the two files exists on the gateway or the agent', () => {
    assert.deepEqual(unknownMetrics(dashboardText, exposed), [], 'grafana-dashboard.json');
    assert.deepEqual(unknownMetrics(alertsText, exposed), [], 'alerts.yaml');
  });

  await t.test('every label a query selects or groups by is carried by the metric it reads', () => {
    const problems = queries.flatMap((q) => labelProblems(q, exposed).map((p) => `${q.where}: ${p}`));
    assert.deepEqual(problems, []);
    const unchecked = [...exposed].filter(([name, f]) => !f.labelsKnown && queries.some((q) => q.expr.includes(name))).map(([name]) => name);
    if (unchecked.length > 0) t.diagnostic(`labels not checked (no series yet, no registry): ${unchecked.join(', ')}`);
  });

  await t.test('the metrics that tell a gateway target from an agent target in the alerts belong to one side only', () => {
    assert.deepEqual([...(exposed.get('pipeops_tunnel_runner_sessions')?.types.keys() ?? [])], ['gateway']);
    assert.deepEqual([...(exposed.get('pipeops_tunnel_connection_state')?.types.keys() ?? [])], ['agent']);
  });
});

test('the check rejects a misspelled metric, a histogram suffix on a counter, a label the metric lacks and a metric of the other side', () => {
  const exposed: Exposed = new Map();
  addExposition(
    exposed,
    'gateway',
    [
      '# TYPE pipeops_tunnel_runner_requests_total counter',
      'pipeops_tunnel_runner_requests_total{code="2xx"} 1',
      '# TYPE pipeops_tunnel_session_rtt_seconds histogram',
      'pipeops_tunnel_session_rtt_seconds_bucket{le="+Inf"} 1',
    ].join('\n'),
  );
  addExposition(exposed, 'agent', '# TYPE pipeops_tunnel_session_rtt_seconds gauge\npipeops_tunnel_session_rtt_seconds 0.001\n');
  assert.deepEqual(unknownMetrics('rate(pipeops_tunnel_runner_request_total[5m])', exposed), ['pipeops_tunnel_runner_request_total']);
  assert.deepEqual(unknownMetrics('pipeops_tunnel_runner_requests_total_bucket', exposed), ['pipeops_tunnel_runner_requests_total_bucket']);
  assert.deepEqual(unknownMetrics('histogram_quantile(0.9, sum by (le) (rate(pipeops_tunnel_session_rtt_seconds_bucket[5m])))', exposed), []);
  assert.deepEqual(labelProblems({ where: 'q', expr: 'sum by (status) (rate(pipeops_tunnel_runner_requests_total{job="g"}[5m]))' }, exposed), [
    'no metric of the expression has label "status"',
  ]);
  assert.deepEqual(labelProblems({ where: 'q', expr: 'pipeops_tunnel_runner_requests_total{result="ok"}' }, exposed), [
    'pipeops_tunnel_runner_requests_total has no label "result"',
  ]);
  assert.deepEqual(labelProblems({ where: 'q', expr: 'pipeops_tunnel_runner_requests_total{job=~"$agent_job"}' }, exposed), [
    'pipeops_tunnel_runner_requests_total is selected on $agent_job but the agent does not expose it',
  ]);
  assert.deepEqual(labelProblems({ where: 'q', expr: 'rate(pipeops_tunnel_session_rtt_seconds_bucket{job=~"$agent_job"}[5m])' }, exposed), [
    'pipeops_tunnel_session_rtt_seconds_bucket is selected on $agent_job but the agent does not expose it',
  ]);
});

test('alerts.yaml parses and every rule has an expr, a for, a severity, a summary, a description and a runbook', () => {
  const rules = alertRules(alerts);
  const names = new Set<string>();
  for (const { group, rule } of rules) {
    const name = String(rule.alert);
    assert.match(name, /^PipeopsTunnel[A-Za-z]+$/, `${group}: alert name`);
    assert.ok(!names.has(name), `${name} is defined once`);
    names.add(name);
    assert.ok(typeof rule.expr === 'string' && rule.expr.trim() !== '', `${name}: expr`);
    assert.match(String(rule.for), /^\d+[smh]$/, `${name}: for`);
    assert.ok(['critical', 'warning', 'info'].includes(String(rule.labels?.severity)), `${name}: labels.severity`);
    for (const key of ['summary', 'description'])
      assert.ok(typeof rule.annotations?.[key] === 'string' && rule.annotations[key] !== '', `${name}: annotations.${key}`);
    assert.match(String(rule.annotations?.runbook_url), /README\.md#troubleshooting$/, `${name}: annotations.runbook_url`);
  }
  // What issue 12 asks the rules to cover.
  for (const name of [
    'PipeopsTunnelAgentDisconnected',
    'PipeopsTunnelGatewayNoAgents',
    'PipeopsTunnelAgentFlapping',
    'PipeopsTunnelKubeApiUpstreamErrors',
    'PipeopsTunnelPolicyDenialsSpike',
    'PipeopsTunnelStreamsGrowing',
    'PipeopsTunnelStreamFailures',
    'PipeopsTunnelGatewayConnectFailures',
  ]) {
    assert.ok(names.has(name), `alerts.yaml defines ${name}`);
  }
});

test('the dashboard is a Grafana model on a Prometheus datasource variable, with unique panel ids inside the grid', () => {
  const d = dashboard as {
    schemaVersion?: unknown;
    uid?: unknown;
    templating?: { list?: Array<{ name?: unknown; type?: unknown; query?: unknown }> };
    panels?: Array<Record<string, unknown>>;
  };
  assert.ok(typeof d.schemaVersion === 'number' && d.schemaVersion >= 36, 'schemaVersion');
  assert.equal(typeof d.uid, 'string');
  const vars = d.templating?.list ?? [];
  const datasource = vars.find((v) => v.name === 'datasource');
  assert.equal(datasource?.type, 'datasource');
  assert.equal(datasource.query, 'prometheus');
  for (const name of ['gateway_job', 'agent_job'])
    assert.ok(
      vars.some((v) => v.name === name),
      `variable ${name}`,
    );
  const ids = new Set<unknown>();
  for (const panel of d.panels ?? []) {
    assert.ok(!ids.has(panel.id), `panel id ${String(panel.id)} is unique`);
    ids.add(panel.id);
    const grid = panel.gridPos as { x: number; w: number };
    assert.ok(grid.x >= 0 && grid.x + grid.w <= 24, `"${String(panel.title)}" fits the 24-column grid`);
    if (panel.type === 'row') continue;
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template literal
    assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, `"${String(panel.title)}" uses the datasource variable`);
    const targets = panel.targets as Array<{ expr?: unknown; datasource?: unknown }>;
    assert.ok(targets.length > 0 && targets.every((x) => typeof x.expr === 'string'), `"${String(panel.title)}" has queries`);
    assert.ok(typeof panel.description === 'string' && panel.description !== '', `"${String(panel.title)}" is described`);
  }
  // Counters are read through rate()/increase(), never raw; histograms through histogram_quantile().
  for (const q of dashboardQueries(dashboard)) {
    for (const [name] of q.expr.matchAll(/\bpipeops_[a-z0-9_]+_total\b/g)) {
      assert.match(q.expr, new RegExp(`(?:rate|increase)\\(${name}\\b`), `${q.where}: ${name} through rate() or increase()`);
    }
    if (q.expr.includes('_bucket')) assert.match(q.expr, /histogram_quantile\(/, `${q.where}: buckets through histogram_quantile()`);
  }
});

/** `promtool` on PATH, or undefined; in CI its absence is a failure, elsewhere a skip. */
function promtool(t: TestContext): string | undefined {
  const found = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (found.error === undefined && found.status === 0) return 'promtool';
  assert.notEqual(process.env.CI, 'true', 'promtool is not on PATH: install it in CI (Debian: apt-get install prometheus)');
  t.skip('promtool is not on PATH');
  return undefined;
}

test('promtool accepts alerts.yaml and every query of the dashboard', (t) => {
  const bin = promtool(t);
  if (bin === undefined) return;
  const rules = spawnSync(bin, ['check', 'rules', ALERTS], { encoding: 'utf8' });
  assert.equal(rules.status, 0, `promtool check rules alerts.yaml:\n${rules.stdout}${rules.stderr}`);

  // The dashboard's PromQL, with Grafana's variables filled in, checked as recording rules.
  const dir = mkdtempSync(join(tmpdir(), 'pipeops-promtool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const exprs = dashboardQueries(dashboard).filter((q) => !q.expr.startsWith('label_values('));
  const filled = exprs.map((q, i) => ({
    record: `dashboard_query_${String(i)}`,
    expr: q.expr
      .replaceAll('$__rate_interval', '5m')
      .replaceAll('$__range', '1h')
      .replace(/\$\{?[a-z_]+\}?/g, '.*'),
  }));
  const file = join(dir, 'dashboard-rules.yaml');
  writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: filled }] }));
  const check = spawnSync(bin, ['check', 'rules', file], { encoding: 'utf8' });
  assert.equal(check.status, 0, `promtool check rules on the dashboard's queries:\n${check.stdout}${check.stderr}`);
});

test('promtool: the gateway-side and agent-side alerts fire on their own series when both share one job', (t) => {
  const bin = promtool(t);
  if (bin === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'pipeops-promtool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const gw = 'job="pipeops",instance="gw:8443"';
  const ag = 'job="pipeops",instance="agent:8080"';
  const annotations = (name: string): Record<string, unknown> => {
    const rule = alertRules(alerts).find((r) => r.rule.alert === name)?.rule;
    assert.ok(rule !== undefined, name);
    return rule.annotations ?? {};
  };
  // The agent's own pipeops_tunnel_sessions stays 1 and shares the job: the gateway rule must ignore it.
  const spec = {
    rule_files: [ALERTS],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: [
          { series: `pipeops_tunnel_sessions{${gw}}`, values: '3 3 0x20' },
          { series: `pipeops_tunnel_runner_sessions{${gw}}`, values: '0x22' },
          { series: `pipeops_tunnel_connect_failures_total{${gw},reason="held"}`, values: '0+1x22' },
          { series: `pipeops_tunnel_sessions{${ag}}`, values: '1x22' },
          { series: `pipeops_tunnel_connection_state{${ag},state="connected"}`, values: '1 1 0x20' },
          { series: `pipeops_tunnel_connection_state{${ag},state="backoff"}`, values: '0 0 1x20' },
        ],
        alert_rule_test: [
          { eval_time: '15m', alertname: 'PipeopsTunnelGatewayNoAgents', exp_alerts: [{ exp_labels: { severity: 'critical', job: 'pipeops' } }] },
          {
            eval_time: '10m',
            alertname: 'PipeopsTunnelAgentDisconnected',
            exp_alerts: [{ exp_labels: { severity: 'critical', job: 'pipeops', instance: 'agent:8080', state: 'connected' } }],
          },
          // The gateway's count of held dials is not an agent standing by.
          { eval_time: '20m', alertname: 'PipeopsTunnelAgentStandingBy', exp_alerts: [] },
        ],
      },
    ],
  };
  // promtool compares annotations too: take them from the rules, with the labels filled in as Prometheus would.
  const fill = (text: unknown, labels: Record<string, string>): string =>
    String(text).replace(/\{\{ \$labels\.([a-z_]+) \}\}/g, (_, l: string) => labels[l] ?? '');
  for (const c of spec.tests[0]?.alert_rule_test ?? []) {
    for (const e of c.exp_alerts as Array<{ exp_labels: Record<string, string>; exp_annotations?: Record<string, string> }>) {
      e.exp_annotations = Object.fromEntries(Object.entries(annotations(c.alertname)).map(([k, v]) => [k, fill(v, e.exp_labels)]));
    }
  }
  const file = join(dir, 'alerts.test.yaml');
  writeFileSync(file, JSON.stringify(spec));
  const run = spawnSync(bin, ['test', 'rules', file], { encoding: 'utf8' });
  assert.equal(run.status, 0, `promtool test rules:\n${run.stdout}${run.stderr}`);
});
