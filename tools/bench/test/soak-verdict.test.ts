// The soak's judgement (lib/soak-verdict.ts, lib/stream-accounting.ts) on
// the numbers a gateway's and an agent's /metrics give: the invariant per
// kind, active streams left over, and the fd and heap bounds with their
// absolute floors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProcessSnapshot } from '../lib/soak-rig.ts';
import { parseStreamAccounting } from '../lib/stream-accounting.ts';
import { soakVerdict } from '../lib/soak-verdict.ts';

const MiB = 1024 * 1024;

const exposition = (opened: number, ok: number, reset: number, active: number): string =>
  [
    '# TYPE pipeops_tunnel_streams_active gauge',
    `pipeops_tunnel_streams_active{kind="http"} ${active}`,
    'pipeops_tunnel_streams_active{kind="ping"} 0',
    '# TYPE pipeops_tunnel_streams_total counter',
    `pipeops_tunnel_streams_total{kind="http",result="ok"} ${ok}`,
    `pipeops_tunnel_streams_total{kind="http",result="reset"} ${reset}`,
    'pipeops_tunnel_streams_total{kind="ping",result="refused"} 2',
    '# TYPE pipeops_tunnel_streams_opened_total counter',
    `pipeops_tunnel_streams_opened_total{kind="http"} ${opened}`,
    'pipeops_tunnel_streams_opened_total{kind="ping"} 2',
    'pipeops_tunnel_runner_streams_active{runner="r1"} 7',
  ].join('\n');

const snapshot = (fds: number, heapUsed: number, metrics: string): ProcessSnapshot => ({
  fds,
  rss: 100e6,
  memory: { rss: 100e6, heapTotal: 2 * heapUsed, heapUsed, external: 1e6, arrayBuffers: 1e5 },
  streams: parseStreamAccounting(metrics),
});

test('the stream accounting is read per kind from a /metrics exposition, other series ignored', () => {
  const a = parseStreamAccounting(exposition(10, 6, 3, 1));
  assert.deepEqual(Object.fromEntries(a), {
    http: { opened: 10, closed: 9, active: 1, results: { ok: 6, reset: 3 } },
    ping: { opened: 2, closed: 2, active: 0, results: { refused: 2 } },
  });
});

test('a soak passes at the baseline within the bounds and fails on a broken invariant, a leftover stream, fds or heap', () => {
  const base = { gateway: snapshot(30, 20 * MiB, exposition(5, 5, 0, 0)), agent: snapshot(30, 20 * MiB, exposition(5, 5, 0, 0)) };
  // Within: 2 more fds (the floor, above 5 % of 30), 2 MiB more heap (the floor, above 5 % of 20 MiB).
  const fine = { gateway: snapshot(32, 22 * MiB, exposition(100, 90, 10, 0)), agent: snapshot(25, 19 * MiB, exposition(100, 99, 1, 0)) };
  assert.deepEqual(soakVerdict(base, fine).problems, []);
  const broken = {
    gateway: snapshot(33, 22.5 * MiB, exposition(100, 90, 9, 0)),
    agent: snapshot(30, 20 * MiB, exposition(100, 98, 1, 1)),
  };
  const problems = soakVerdict(base, broken).problems;
  assert.equal(problems.length, 4, problems.join('\n'));
  assert.match(problems.join('\n'), /gateway: 33 open fds at the end, baseline 30, bound 32/);
  assert.match(problems.join('\n'), /gateway: heap used 23\.6 MB at the end/);
  assert.match(problems.join('\n'), /gateway http: opened 100 ≠ closed 99 \+ active 0/);
  assert.match(problems.join('\n'), /agent http: 1 streams still active after quiet/);
});
