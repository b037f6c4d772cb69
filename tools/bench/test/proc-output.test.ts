// The harness's `output: 'file'` (e2e/harness/proc.ts), as the benchmark and
// the soak start the relays: the child writes its own log file, nothing of it
// passes through this process, and lines are still found when waited for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start } from '@pipeops/tunnel-e2e/harness/proc';

const CHILD = `
process.stdout.write(JSON.stringify({ msg: 'first', n: 1 }) + '\\n');
process.stdin.setEncoding('utf8');
process.stdin.once('data', (d) => {
  process.stderr.write('second ' + d.trim() + '\\n');
  process.stdin.once('data', () => process.exit(0));
});
`;

test('a process started with output "file" writes its log itself, and its lines are still waited for and read', async (t) => {
  const logDir = mkdtempSync(join(tmpdir(), 'proc-output-'));
  t.after(() => rmSync(logDir, { recursive: true, force: true }));
  const proc = start('child', process.execPath, ['-e', CHILD], { logDir, output: 'file', stdin: 'pipe' });
  t.after(() => proc.stop('SIGKILL', 0));
  assert.equal(proc.child.stdout, null, 'no pipe to this process');
  const first = await proc.waitForRecord('first record', (r) => r.msg === 'first', 10_000);
  assert.equal(first.n, 1);
  proc.child.stdin?.write('go\n');
  await proc.waitForLine('second line', /^second go$/, 10_000);
  assert.deepEqual(proc.lines, ['{"msg":"first","n":1}', 'second go']);
  const closed = once(proc.child, 'close'); // the harness writes its note when the child's stdio is closed
  proc.child.stdin?.write('bye\n');
  assert.equal(await proc.exited, 0);
  await closed;
  assert.match(readFileSync(join(logDir, 'child.log'), 'utf8'), /^\{"msg":"first","n":1\}\nsecond go\n\n\[harness\] child exited code=0/);
});
