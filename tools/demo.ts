// `pnpm demo`: a gateway and an agent on 127.0.0.1, started with the real
// command exactly as a user would, with a visible result: the agent connects
// over TLS, the gateway lists it with its status, the gateway is killed and
// restarted and the agent is back within about a second, then both shut down
// cleanly. (The Kubernetes path through the tunnel comes with the next issue.)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent as HttpsAgent, request } from 'node:https';
import { get as httpGet } from 'node:http';

const BIN = fileURLToPath(new URL('../packages/cli/bin/pipeops-tunnel.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pipeops-tunnel-demo-'));
const agentToken = randomBytes(18).toString('base64url');
const adminToken = randomBytes(18).toString('base64url');
const children = new Set<ChildProcess>();

type LogRecord = Record<string, unknown> & { msg?: string };

/** A child running the CLI; `waitFor` resolves with the first log record matching. */
function run(name: string, args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const records: LogRecord[] = [];
  const waiters: Array<() => void> = [];
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (data: string) => {
    buffered += data;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try { records.push(JSON.parse(line) as LogRecord); } catch { continue; }
      if (process.env.DEMO_VERBOSE) console.log(`  [${name}] ${line}`);
    }
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { children.delete(child); resolve(code); }));
  async function waitFor(what: string, match: (r: LogRecord) => boolean, timeoutMs = 20_000): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = records.find(match);
      if (found) return found;
      if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}) before: ${what}`);
      if (Date.now() > deadline) throw new Error(`${name}: timed out waiting for ${what}`);
      await new Promise<void>((wake) => { waiters.push(wake); setTimeout(wake, 200).unref(); });
    }
  }
  return { child, records, waitFor, exited };
}

function getJson(url: string, headers: Record<string, string>, ca?: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: import('node:http').IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => { text += d; }).on('end', () => {
        try { resolve({ status: res.statusCode ?? 0, body: text.startsWith('{') ? JSON.parse(text) : text }); } catch (err) { reject(err); }
      });
    };
    const req = url.startsWith('https:')
      ? request(url, { headers, agent: new HttpsAgent(ca === undefined ? {} : { ca }) }, onResponse)
      : httpGet(url, { headers }, onResponse);
    req.on('error', reject).end();
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const step = (text: string) => console.log(`\n▶ ${text}`);

async function main(): Promise<void> {
  writeFileSync(join(dir, 'tokens.yaml'), [
    `agents:  [{ cluster: demo-cluster, token: "${agentToken}" }]`,
    `admins:  [{ token: "${adminToken}" }]`,
    'runners: []', '',
  ].join('\n'));

  step('gateway: pipeops-tunnel gateway --dev --listen 127.0.0.1:0 --tokens tokens.yaml');
  let gateway = run('gateway', ['gateway', '--dev', '--listen', '127.0.0.1:0', '--tokens', join(dir, 'tokens.yaml'), '--config', writeGatewayConfig()]);
  const listening = await gateway.waitFor('listening', (r) => typeof r.url === 'string');
  const caFile = String((await gateway.waitFor('dev CA', (r) => typeof r.caFile === 'string')).caFile);
  const gatewayUrl = String(listening.url);
  const ca = readFileSync(caFile, 'utf8');
  console.log(`  listening on ${gatewayUrl}, self-signed CA at ${caFile}`);

  step('agent: pipeops-tunnel connect (dials out over wss://, token from PIPEOPS_PIPEOPS_TOKEN)');
  writeFileSync(join(dir, 'agent.yaml'), [
    'agent:', '  cluster_name: demo-cluster', '  name: demo-agent', '  port: 0', '  listen_host: 127.0.0.1', '  poll_interval: 1s',
    '  labels: { environment: demo }',
    'pipeops:', `  api_url: ${gatewayUrl}`, '  tls:', `    ca_file: ${caFile}`,
    '  reconnect: { interval: 200ms, max_interval: 1s }', '',
  ].join('\n'));
  process.env.PIPEOPS_PIPEOPS_TOKEN = agentToken;
  const agent = run('agent', ['connect', '--config', join(dir, 'agent.yaml')]);
  delete process.env.PIPEOPS_PIPEOPS_TOKEN;
  const health = await agent.waitFor('health listener', (r) => typeof r.msg === 'string' && r.msg.startsWith('health listener on'));
  const healthUrl = `http://${String(health.msg).slice('health listener on '.length)}`;

  const listClusters = async () => {
    const res = await getJson(`${gatewayUrl}/v1/clusters`, { authorization: `Bearer ${adminToken}` }, ca);
    return res.status === 200 && res.body.clusters?.length > 0 && res.body.clusters[0].lastStatus ? res.body.clusters : undefined;
  };
  const clusters = await until('the cluster in /v1/clusters with a status report', listClusters);
  step(`GET ${gatewayUrl}/v1/clusters (admin token)`);
  for (const c of clusters) {
    console.log(`  cluster ${c.cluster}: agent ${c.name} (${c.agentId}) v${c.version}, labels ${JSON.stringify(c.labels)}`);
    console.log(`    connected since ${c.connectedAt}, rtt ${typeof c.rttMs === 'number' ? c.rttMs.toFixed(2) : '?'} ms, last status: ${JSON.stringify(c.lastStatus)}`);
  }
  const ready = await getJson(`${healthUrl}/ready`, {});
  console.log(`  agent ${healthUrl}/ready → ${ready.status} ${JSON.stringify(ready.body)}`);

  step('resilience: SIGKILL the gateway, start it again on the same port');
  gateway.child.kill('SIGKILL');
  await gateway.exited;
  await until('the agent to notice', async () => ((await getJson(`${healthUrl}/ready`, {})).status === 503 ? true : undefined));
  console.log('  agent /ready → 503 while the gateway is down');
  const port = new URL(gatewayUrl).port;
  gateway = run('gateway', ['gateway', '--dev', '--listen', `127.0.0.1:${port}`, '--tokens', join(dir, 'tokens.yaml'), '--config', writeGatewayConfig()]);
  await gateway.waitFor('listening', (r) => typeof r.url === 'string');
  const restartedAt = performance.now();
  await until('the agent to be ready again', async () => ((await getJson(`${healthUrl}/ready`, {})).status === 200 ? true : undefined));
  console.log(`  agent ready again ${(performance.now() - restartedAt).toFixed(0)} ms after the gateway listened`);

  step('graceful shutdown: SIGTERM to the agent, then to the gateway');
  agent.child.kill('SIGTERM');
  console.log(`  agent exited with code ${await agent.exited}`);
  gateway.child.kill('SIGTERM');
  console.log(`  gateway exited with code ${await gateway.exited}`);
  console.log('\n✔ demo complete');
}

/** The gateway keeps its dev CA in one state folder, so a restart serves the same CA. */
function writeGatewayConfig(): string {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, `gateway:\n  state_dir: ${join(dir, 'state')}\n  drain_timeout: 5s\n`);
  return file;
}

try {
  await main();
} catch (err) {
  console.error(`\n✘ demo failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
