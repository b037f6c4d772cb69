// `pnpm e2e`: builds what is missing (kubesim + kubectl, kwok, helm — cached
// in e2e/.cache/bin), starts a real kube-apiserver, kwok, the gateway, five
// agents and five proxies (harness/env.ts), runs every scenario directly and
// through the tunnel (gateway endpoint and `pipeops-tunnel proxy`), prints
// one line per scenario, writes e2e/.cache/last-run.json and exits 1 if any
// failed.
//
//   node e2e/run.ts [--only REGEX] [--list] [--bundle]
//
// --bundle: every gateway, agent, proxy and command runs from the command's
// bundle as the package and the image ship it (tools/bundle.ts, built first)
// instead of the workspace's TypeScript sources. CI runs the matrix both ways.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setupEnv, type Env } from './harness/env.ts';
import { onInterrupt, stopAll } from './harness/proc.ts';
import { runScenario, type ScenarioResult } from './harness/scenario.ts';
import { CACHE_DIR, runFromBundle } from './harness/paths.ts';
import { allScenarios } from './scenarios/index.ts';

const { values: flags } = parseArgs({ options: { only: { type: 'string' }, list: { type: 'boolean' }, bundle: { type: 'boolean' } } });
const log = (s: string) => console.log(s);
const only = flags.only !== undefined ? new RegExp(flags.only, 'i') : undefined;
const scenarios = allScenarios.filter((s) => only === undefined || only.test(s.name) || only.test(s.group));

if (flags.list === true) {
  for (const s of allScenarios)
    console.log(
      `${s.group.padEnd(14)} ${s.name}${
        s.notOn
          ? `  (n/a: ${Object.entries(s.notOn)
              .map(([k, v]) => `${k}: ${v}`)
              .join('; ')})`
          : ''
      }`,
    );
  process.exit(0);
}
if (scenarios.length === 0) {
  console.error(`no scenario matches ${flags.only}`);
  process.exit(2);
}
if (flags.bundle === true) log(`[e2e] gateway, agents, proxies and commands from the bundle: ${runFromBundle()}`);

let env: Env | undefined;
const teardown = async () => {
  await env?.close().catch(() => {});
  await stopAll();
};
onInterrupt(teardown);

const results: ScenarioResult[] = [];
const started = performance.now();
let setupError: string | undefined;
try {
  log(`[e2e] ${scenarios.length} scenario(s); targets: direct (API server, agent's SA token) | gateway (/k8s/clusters/C) | proxy (pipeops-tunnel proxy)`);
  env = await setupEnv((s) => log(`[e2e] ${s}`));
  log(
    `[e2e] kubectl v1.${env.kubectlMinor} (same minor as the API server)${env.systemKubectlMinor !== undefined ? `, system kubectl v1.${env.systemKubectlMinor} too` : ''}`,
  );
  for (const s of scenarios) results.push(await runScenario(env, s, log));
} catch (err) {
  setupError = (err as Error).stack ?? String(err);
  console.error(`[e2e] harness failure: ${setupError}`);
} finally {
  const runDir = env?.runDir;
  await teardown();
  const failed = results.filter((r) => !r.ok);
  const summary = {
    finishedAt: new Date().toISOString(),
    seconds: Math.round((performance.now() - started) / 1000),
    filter: flags.only ?? null,
    relays: flags.bundle === true ? 'bundle' : 'sources',
    runDir: runDir ?? null,
    setupError: setupError ?? null,
    passed: results.length - failed.length,
    failed: failed.length,
    notRun: scenarios.length - results.length,
    results,
  };
  mkdirSync(CACHE_DIR, { recursive: true });
  writeFileSync(join(CACHE_DIR, 'last-run.json'), `${JSON.stringify(summary, null, 2)}\n`);
  log(
    `\n[e2e] ${summary.passed} passed, ${summary.failed} failed${summary.notRun > 0 ? `, ${summary.notRun} not run` : ''} in ${summary.seconds} s — summary in e2e/.cache/last-run.json${runDir ? `, logs in ${runDir}/logs` : ''}`,
  );
  log(`e2e: ${summary.passed} passed, ${summary.failed + summary.notRun} failed`);
  // exit now: client-node keeps sockets and timers of its own alive after the tunnels are closed
  process.exit(failed.length > 0 || setupError !== undefined || summary.notRun > 0 ? 1 : 0);
}
