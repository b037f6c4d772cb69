import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultSessionOptions, MuxError, Session, verifySessionOptions } from '../src/index.ts';

test('defaults follow the contract and the spec initial window', () => {
  assert.deepEqual(
    { ...defaultSessionOptions },
    {
      acceptBacklog: 256,
      maxConcurrentStreams: 10_000,
      keepAliveIntervalMs: 30_000,
      keepAliveTimeoutMs: 10_000,
      streamOpenTimeoutMs: 30_000,
      streamCloseTimeoutMs: 60_000,
      maxStreamWindowBytes: 262_144,
      autoTuneWindow: false,
      sessionWindowGrowthBytes: 0,
      maxFrameBytes: 65_536,
      ackDelayMs: 20,
      goAwayTimeoutMs: 5_000,
      maxPingsPerSecond: 50,
      pingBurst: 50,
    },
  );
  assert.doesNotThrow(() => verifySessionOptions({ client: true }));
});

test('an invalid option is rejected with PT_ERR_MUX_CONFIG naming the option', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{}, 'client'],
    [{ client: true, maxStreamWindowBytes: 1024 }, 'maxStreamWindowBytes'],
    [{ client: true, sessionWindowGrowthBytes: -1 }, 'sessionWindowGrowthBytes'],
    [{ client: true, maxFrameBytes: 0 }, 'maxFrameBytes'],
    [{ client: false, keepAliveIntervalMs: -1 }, 'keepAliveIntervalMs'],
    [{ client: false, acceptBacklog: 1.5 }, 'acceptBacklog'],
    [{ client: false, streamOpenTimeoutMs: '5' }, 'streamOpenTimeoutMs'],
    [{ client: false, autoTuneWindow: 'yes' }, 'autoTuneWindow'],
    [{ client: false, maxPingsPerSecond: 0 }, 'maxPingsPerSecond'],
    [{ client: true, pingBurst: 0.5 }, 'pingBurst'],
    [{ client: true, ackDelayMs: -1 }, 'ackDelayMs'],
  ];
  for (const [o, name] of cases) {
    assert.throws(
      () => verifySessionOptions(o as never),
      (e: unknown) => e instanceof MuxError && e.code === 'PT_ERR_MUX_CONFIG' && e.message.includes(name),
    );
    assert.throws(() => new Session(o as never), { code: 'PT_ERR_MUX_CONFIG' });
  }
});
