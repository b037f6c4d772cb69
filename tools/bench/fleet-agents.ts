// Many agents in one process, for the fleet scale scenario: each is the real
// agent library (`createAgent`: its dial loop, backoff with full jitter,
// hello/welcome, status reports, keepalives, health listener) with the
// Kubernetes proxy switched off — a stand-in for one agent pod per cluster,
// speaking the real protocol to the real gateways. Not the agent a cluster
// runs: that is `pipeops-tunnel connect`, one process per cluster.
//
//   node tools/bench/fleet-agents.ts --config FILE
//
// FILE: { "url": "https://lb", "caFile": "...", "agents": [{ "cluster", "token" }, …] }
// Prints `C <index> <epoch ms>` when agent <index> is connected (welcome
// received), `D <index> <epoch ms>` when its session is lost, and
// `READY {"agents":N}` once every agent has connected once. Closes every
// agent and exits when stdin ends.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createAgent, defaultAgentOptions, type Agent } from '@pipeops/tunnel-agent';

interface FleetAgentsConfig {
  url: string;
  caFile: string;
  agents: Array<{ cluster: string; token: string }>;
}

/** Agents dialing at once while the fleet is brought up (the storm later is the agents' own). */
const START_BATCH = 50;

const { values } = parseArgs({ options: { config: { type: 'string' } } });
if (values.config === undefined) throw new Error('usage: fleet-agents.ts --config FILE');
const config = JSON.parse(readFileSync(values.config, 'utf8')) as FleetAgentsConfig;
const logger = pino({ level: 'error' }, pino.destination(2));
const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

const agents: Agent[] = config.agents.map((a, i) => {
  const agent = createAgent(
    {
      ...defaultAgentOptions,
      apiUrl: config.url,
      token: a.token,
      agentId: `fleet-agent-${i}`,
      name: `fleet-agent-${i}`,
      clusterName: a.cluster,
      labels: {},
      version: '0.0.0-bench',
      port: 0,
      listenHost: '127.0.0.1',
      tls: { insecureSkipVerify: false, caFile: config.caFile },
      reconnect: { ...defaultAgentOptions.reconnect },
      kubernetes: { ...defaultAgentOptions.kubernetes, enabled: false },
    },
    { logger, registry: new Registry() },
  );
  agent.on('connected', () => out(`C ${i} ${Date.now()}`));
  agent.on('disconnected', () => out(`D ${i} ${Date.now()}`));
  return agent;
});

for (let from = 0; from < agents.length; from += START_BATCH) {
  const batch = agents.slice(from, from + START_BATCH);
  await Promise.all(
    batch.map(async (agent) => {
      const connected = new Promise<void>((resolve) => agent.once('connected', () => resolve()));
      await agent.start();
      await connected;
    }),
  );
}
out(`READY ${JSON.stringify({ agents: agents.length })}`);

process.stdin.resume();
process.stdin.once('end', () => {
  void Promise.all(agents.map((a) => a.close(1_000))).finally(() => process.exit(0));
});
