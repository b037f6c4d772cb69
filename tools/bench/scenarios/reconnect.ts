import type { BenchOptions, Rig, Scenario } from './types.ts';

/**
 * The gateway is SIGKILLed and started again on the same port; the figure is
 * the time from the new gateway's "listening" log record to its
 * "agent connected" record (both stamped by the gateway's own clock). The
 * agent runs with the default reconnect settings (interval 5 s, max 1 m):
 * what brings it back quickly is its port probe, not a short interval.
 *
 * Each round first lets the session stay up past the agent's stability
 * period (10 s): a gateway that drops sessions seconds after accepting them
 * is flapping, and the agent backs off from it by design (a separate case).
 */
const STABLE_AFTER_MS = 10_000;
export const reconnect: Scenario = {
  name: 'reconnect',
  metrics: [
    {
      name: 'reconnect-ready',
      unit: 's',
      description: 'gateway SIGKILLed and restarted: its listening record → the agent connected again (hello received), agent on default reconnect settings',
      target: { kind: 'at_most', value: 1 },
    },
  ],
  rounds: (o) => (o.quick ? 2 : 5),
  async setup(o: BenchOptions): Promise<Rig> {
    const path = await o.startFullPath({ agentConfig: { pipeops: { reconnect: { interval: '5s', max_interval: '1m' } } } });
    return {
      async tunnel() {
        const up = await path.tunnel.gateway().waitForRecord('agent connected', (r) => r.event === 'agent_connected', 30_000);
        const wait = Number(up.time) + STABLE_AFTER_MS + 500 - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        await path.tunnel.killGateway();
        await path.tunnel.startGateway();
        const gw = path.tunnel.gateway();
        const listening = await gw.waitForRecord('listening', (r) => r.msg !== undefined && String(r.msg).startsWith('gateway listening'), 30_000);
        const connected = await gw.waitForRecord('agent connected', (r) => r.event === 'agent_connected', 30_000);
        return { 'reconnect-ready': (Number(connected.time) - Number(listening.time)) / 1000 };
      },
      direct: null,
      peer: null,
      close: () => path.close(),
    };
  },
};
