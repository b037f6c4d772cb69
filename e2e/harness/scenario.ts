// A scenario is one function run once per target (direct, gateway, proxy),
// each time in a namespace of its own. It throws when something it checks is
// wrong and returns a transcript; the transcripts of the tunnel targets,
// normalised, must equal the direct one.
import type { Env, Target, TargetName, ClusterKind } from './env.ts';
import { TARGETS } from './env.ts';
import { normalize, firstDifference } from './normalize.ts';
import type { CommandResult } from './run-command.ts';

export interface Ctx {
  env: Env;
  t: Target;
  /** This run's namespace (already created, with its default ServiceAccount). */
  ns: string;
  /** kubectl on this target; fails the scenario when the exit code is not `expect` (default 0). */
  k(
    args: string[],
    o?: { expect?: number; stdin?: string | Buffer; timeoutMs?: number; env?: Record<string, string>; bin?: string; cwd?: string },
  ): Promise<string>;
}

export interface Scenario {
  name: string;
  /** Issue-4 matrix row it belongs to. */
  group: string;
  cluster?: ClusterKind;
  /** Targets that cannot run it, with the reason (reported, never silently skipped). */
  notOn?: Partial<Record<TargetName, string>>;
  /** Compare the tunnel transcripts with the direct one (default true). */
  compare?: boolean;
  /** Extra normalisation of the transcript before comparison. */
  normalize?: (s: string) => string;
  run(ctx: Ctx): Promise<string>;
}

export type Outcome = { status: 'pass' | 'fail' | 'differs' | 'n/a'; ms: number; detail?: string; transcript?: string };
export interface ScenarioResult {
  name: string;
  group: string;
  ok: boolean;
  targets: Partial<Record<TargetName, Outcome>>;
}

export function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

function slug(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);
}

export async function runScenario(env: Env, s: Scenario, log: (line: string) => void): Promise<ScenarioResult> {
  const targets: Partial<Record<TargetName, Outcome>> = {};
  const transcripts: Partial<Record<TargetName, string>> = {};
  for (const name of TARGETS) {
    const reason = s.notOn?.[name];
    if (reason !== undefined) {
      targets[name] = { status: 'n/a', ms: 0, detail: reason };
      continue;
    }
    const t = env.target(name, s.cluster ?? 'full');
    const started = performance.now();
    try {
      const ns = await env.namespace(`${slug(s.name)}-${name}`.slice(0, 63));
      const ctx: Ctx = {
        env,
        t,
        ns,
        async k(args, o = {}) {
          const r: CommandResult = await t.kubectl(args, o);
          const expect = o.expect ?? 0;
          if (r.code !== expect)
            throw new Error(`kubectl ${args.join(' ')} → exit ${r.code} (expected ${expect}): ${(r.stderr || r.stdout).trim().slice(0, 800)}`);
          return expect === 0 ? r.stdout : `${r.stdout}${r.stderr}`;
        },
      };
      const out = await s.run(ctx);
      transcripts[name] = (s.normalize ?? ((x: string) => x))(normalize(out, ns));
      const tr = transcripts[name] ?? '';
      targets[name] = { status: 'pass', ms: performance.now() - started, transcript: tr.length > 4000 ? `${tr.slice(0, 4000)}…` : tr };
    } catch (err) {
      targets[name] = { status: 'fail', ms: performance.now() - started, detail: (err as Error).message };
    }
  }
  const base = transcripts.direct;
  if (s.compare !== false && base !== undefined) {
    for (const name of ['gateway', 'proxy'] as const) {
      const mine = transcripts[name];
      const o = targets[name];
      if (mine !== undefined && o?.status === 'pass' && mine !== base) {
        targets[name] = { ...o, status: 'differs', detail: `output differs from direct — ${firstDifference(base, mine)}` };
      }
    }
  }
  const ok = Object.values(targets).every((o) => o.status === 'pass' || o.status === 'n/a');
  const cell = (n: TargetName) => {
    const o = targets[n];
    if (o === undefined) return `${n} -`;
    const mark = o.status === 'pass' ? 'ok' : o.status === 'n/a' ? 'n/a' : o.status.toUpperCase();
    return `${n} ${mark}${o.status === 'n/a' ? '' : ` ${(o.ms / 1000).toFixed(1)}s`}`;
  };
  log(`${ok ? 'PASS' : 'FAIL'}  ${s.name.padEnd(38)} ${TARGETS.map(cell).join(' | ')}`);
  for (const n of TARGETS) {
    const o = targets[n];
    if (o?.detail !== undefined && o.status !== 'pass') log(`        ${n}: ${o.detail.split('\n').join('\n          ')}`);
  }
  return { name: s.name, group: s.group, ok, targets };
}
