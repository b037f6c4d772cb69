import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { gatewayErrorCodes } from '../src/index.ts';

test('every gateway error code appears in the README error-code table with its status, and nothing else does', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Error codes'));
  const rows = [...section.matchAll(/^\| `(PT_ERR_[A-Z0-9_]+)` \| (\d*) *\|/gm)].map((m) => ({ code: m[1] ?? '', status: m[2] ?? '' }));
  assert.deepEqual(rows.map((r) => r.code).sort(), Object.keys(gatewayErrorCodes).sort());
  for (const r of rows) {
    const entry: { status?: number; message: string } = gatewayErrorCodes[r.code as keyof typeof gatewayErrorCodes];
    assert.equal(r.status === '' ? undefined : Number(r.status), entry.status, r.code);
  }
});
