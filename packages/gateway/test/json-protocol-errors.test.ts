import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { jsonProtocolErrorCodes } from '../src/json-protocol/index.ts';

test('every JSON protocol error code is in the README table, and the table lists nothing else', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('### JSON protocol error codes');
  assert.notEqual(start, -1, 'the README has a "JSON protocol error codes" section');
  const next = readme.indexOf('\n## ', start);
  const section = readme.slice(start, next === -1 ? undefined : next);
  const rows = [...section.matchAll(/^\| `(PT_ERR_[A-Z0-9_]+)` \| \S/gm)].map((m) => m[1]);
  assert.deepEqual(rows.sort(), Object.keys(jsonProtocolErrorCodes).sort());
});
