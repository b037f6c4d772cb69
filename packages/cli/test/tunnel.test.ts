import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent, request } from 'node:https';
import type { TestContext } from 'node:test';
import { cleanEnv, startCli, tempDir, writeFile, type CliProcess } from './helpers.ts';

// The gateway under test runs with --dev (TLS with a generated CA); the agents
// trust that CA through pipeops.tls.ca_file.

const AGENT_TOKEN = 'agent-tkn-4d2c8e1f9a';
const ADMIN_TOKEN = 'admin-tkn-0b7a5c3d61';
const ADMIN2_TOKEN = 'admin-tkn2-e8f1a2b3c4';
const WRONG_TOKEN = 'wrong-tkn-9a8b7c6d5e';
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

function tokensYaml(admins: string[]): string {
  return `${['agents:', `  - cluster: c1`, `    token_sha256: "${sha(AGENT_TOKEN)}"`, 'admins:', ...admins.map((a) => `  - token_sha256: "${sha(a)}"`)].join(
    '\n',
  )}\n`;
}

const isMsg =
  (prefix: string) =>
  (r: Record<string, unknown>): boolean =>
    typeof r.msg === 'string' && r.msg.startsWith(prefix);

describe('connect against a gateway child', () => {
  let dir: string;
  let tokensFile: string;
  let gateway: CliProcess;
  let gatewayPort: number;
  let caFile: string;
  let tls: HttpsAgent;
  // The gateway lives as long as the suite: its cleanups run in the suite's after().
  const cleanups: Array<() => unknown> = [];
  const suite = {
    after: (fn: () => unknown) => {
      cleanups.unshift(fn);
    },
  } as unknown as TestContext;
  after(async () => {
    for (const fn of cleanups) await fn();
  });

  /** GET /v1/clusters with a bearer token: status and body. */
  function clusters(token: string): Promise<{ status: number; body: { clusters?: Array<{ cluster: string }> } }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gatewayPort, path: '/v1/clusters', agent: tls, headers: { authorization: `Bearer ${token}` } }, (res) => {
        let text = '';
        res
          .setEncoding('utf8')
          .on('data', (d: string) => {
            text += d;
          })
          .on('end', () => {
            resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : JSON.parse(text) });
          });
      });
      req.on('error', reject).end();
    });
  }

  /** Polls /v1/clusters until `c1`'s presence equals `present`, with a bounded deadline. */
  async function waitForCluster(present: boolean, token = ADMIN_TOKEN, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await clusters(token);
      const listed = r.status === 200 && (r.body.clusters ?? []).some((c) => c.cluster === 'c1');
      if (listed === present) return;
      if (Date.now() > deadline) throw new Error(`c1 ${present ? 'never appeared in' : 'never left'} /v1/clusters (last ${r.status})`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  function startAgent(t: TestContext, token = AGENT_TOKEN, extra: Record<string, string> = {}): CliProcess {
    return startCli(
      t,
      ['connect', '--debug', '--pipeops-url', `https://127.0.0.1:${gatewayPort}`, '--port', '0'],
      cleanEnv({
        PIPEOPS_PIPEOPS_TOKEN: token,
        PIPEOPS_AGENT_CLUSTER_NAME: 'c1',
        PIPEOPS_AGENT_LISTEN_HOST: '127.0.0.1',
        PIPEOPS_PIPEOPS_TLS_CA_FILE: caFile,
        PIPEOPS_PIPEOPS_RECONNECT_INTERVAL: '100ms',
        PIPEOPS_PIPEOPS_RECONNECT_MAX_INTERVAL: '200ms',
        ...extra,
      }),
    );
  }

  before(async () => {
    dir = tempDir(suite);
    tokensFile = writeFile(dir, 'tokens.yaml', tokensYaml([ADMIN_TOKEN]));
    gateway = startCli(
      suite,
      ['gateway', '--dev', '--listen', '127.0.0.1:0', '--tokens', tokensFile, '--debug'],
      cleanEnv({
        PIPEOPS_GATEWAY_STATE_DIR: dir,
        PIPEOPS_GATEWAY_DRAIN_TIMEOUT: '2s',
      }),
    );
    const ca = await gateway.waitFor(isMsg('dev CA written to'), 'dev CA record');
    caFile = String(ca.caFile);
    const listening = await gateway.waitFor(isMsg('gateway listening on https://'), 'listening record');
    gatewayPort = Number(listening.port);
    tls = new HttpsAgent({ ca: readFileSync(caFile), keepAlive: false });
    suite.after(() => tls.destroy());
  });

  test('the agent connects, and SIGTERM makes it leave and exit 0', async (t) => {
    const agent = startAgent(t);
    await waitForCluster(true);
    await agent.waitFor(isMsg('tunnel connected'), 'tunnel connected');
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exited, 0, agent.output());
    await waitForCluster(false);
    assert.ok(!agent.output().includes(AGENT_TOKEN), 'the accepted token never appears in the agent output at debug level');
  });

  test('a rejected token exits 3 and never appears in the output at debug level', async (t) => {
    const agent = startAgent(t, WRONG_TOKEN);
    assert.equal(await agent.exited, 3, agent.output());
    assert.ok(
      agent.records.some((r) => r.level === 20),
      'debug records were written',
    );
    assert.ok(!agent.output().includes(WRONG_TOKEN));
  });

  test('SIGHUP reloads the tokens: a new admin token lists the clusters, and the agent stays connected', async (t) => {
    const agent = startAgent(t);
    await waitForCluster(true);
    await agent.waitFor(isMsg('tunnel connected'), 'tunnel connected'); // records are written in batches
    assert.equal((await clusters(ADMIN2_TOKEN)).status, 401, 'the new token is unknown before the reload');
    writeFile(dir, 'tokens.yaml', tokensYaml([ADMIN_TOKEN, ADMIN2_TOKEN]));
    const before = gateway.records.length;
    gateway.child.kill('SIGHUP');
    await gateway.waitFor((r) => gateway.records.indexOf(r) >= before && r.msg === 'SIGHUP: tokens reloaded', 'SIGHUP reload record');
    await waitForCluster(true, ADMIN2_TOKEN);
    assert.ok(!agent.records.some(isMsg('tunnel disconnected')), 'the agent was not dropped');
    assert.equal(agent.records.filter(isMsg('tunnel connected')).length, 1);
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exited, 0);
    await waitForCluster(false);
  });

  test('SIGTERM to the gateway drains and exits 0, and the agent sees a reconnect', async (t) => {
    const agent = startAgent(t);
    await waitForCluster(true);
    gateway.child.kill('SIGTERM');
    assert.equal(await gateway.exited, 0, gateway.output());
    await gateway.waitFor((r) => r.msg === 'gateway stopped', 'gateway stopped');
    await agent.waitFor(isMsg('tunnel disconnected'), 'agent saw the tunnel drop');
    await agent.waitFor((r) => r.msg === 'tunnel dial failed' || r.msg === 'backoff', 'agent tries to reconnect');
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exited, 0, agent.output());
    for (const token of [AGENT_TOKEN, ADMIN_TOKEN, ADMIN2_TOKEN, WRONG_TOKEN]) {
      assert.ok(!gateway.output().includes(token), 'no token in the gateway output');
    }
  });
});
