// What a failed soak prints from the gateway's and the agent's logs
// (lib/log-problems.ts): warnings, errors counted by message, rare ones whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentRecordedUpstreamReset, logProblems } from '../lib/log-problems.ts';

const line = (o: Record<string, unknown>): string => JSON.stringify({ level: 30, ...o });

test('errors are counted by message with numbers masked, and a rare message is printed whole', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'log-problems-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'gateway-1.log'),
    [
      'Debugger listening on ws://127.0.0.1:1/x',
      line({ msg: 'gateway listening' }),
      ...Array.from({ length: 5 }, (_, i) => line({ event: 'audit', error: `stream ${i * 2 + 1} reset by peer` })),
      line({ event: 'audit', requestId: 'the-odd-one', error: 'the upstream response was cut short' }),
      line({ event: 'audit', requestId: 'soak-7', status: 200 }),
      line({ event: 'audit', requestId: 'soak-70', status: 200 }),
      line({ level: 50, event: 'request_failed', err: { message: 'boom' }, msg: 'request handler failed' }),
      '{"truncated',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'agent-soak.log'), `${line({ msg: 'tunnel connected' })}\n`);
  const report = logProblems(dir, ['soak-7']);
  assert.ok(!report.includes('agent-soak.log'), 'a quiet log is left out');
  assert.match(report, /1 lines at warn and above:\n {4}\{"level":50/);
  assert.match(report, /\n {5,}5 {2}stream N reset by peer\n/);
  assert.ok(!report.includes('"stream 3 reset by peer"'), 'a frequent message is counted, not printed');
  assert.match(report, /1 {2}the upstream response was cut short\n {12}\{.*"requestId":"the-odd-one"/);
  assert.match(report, /1 {2}boom/);
  assert.match(report, /records of the failed streams:\n {4}\{.*"requestId":"soak-7"/);
  assert.ok(!report.includes('"soak-70"'), 'only the named request ids');
});

test('nothing to report is the empty string', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'log-problems-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'agent.log'), `${line({ msg: 'fine' })}\n`);
  assert.equal(logProblems(dir), '');
});

test("a request counts as reset by the API server only when the agent's own record of it says so", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'log-problems-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'agent-soak.log'),
    [
      line({ event: 'audit', requestId: 'soak-1', status: 502, error: 'read ECONNRESET' }),
      line({ event: 'audit', requestId: 'soak-2', status: 502, error: 'other side closed' }),
      line({ event: 'audit', requestId: 'soak-3', status: 200 }),
      line({ event: 'audit', requestId: 'soak-4', status: 502, error: 'the agent has no route' }),
    ].join('\n'),
  );
  writeFileSync(join(dir, 'gateway-1.log'), `${line({ event: 'audit', requestId: 'soak-5', status: 502, error: 'read ECONNRESET' })}\n`);
  assert.equal(agentRecordedUpstreamReset(dir, 'soak-1'), true);
  assert.equal(agentRecordedUpstreamReset(dir, 'soak-2'), true);
  assert.equal(agentRecordedUpstreamReset(dir, 'soak-3'), false, 'answered 200');
  assert.equal(agentRecordedUpstreamReset(dir, 'soak-4'), false, 'a 502 of another cause');
  assert.equal(agentRecordedUpstreamReset(dir, 'soak-5'), false, "the gateway's record is not the agent's");
  assert.equal(agentRecordedUpstreamReset(dir, 'soak-6'), false, 'no record at all');
});
