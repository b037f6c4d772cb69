import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { TunnelError, errorCodes, isTunnelError } from '../src/index.ts';

test('every registered error code appears in the README error-code table, and nothing else does', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Error codes'));
  const documented = [...section.matchAll(/^\| `(PT_ERR_[A-Z0-9_]+)` \| (\d*) *\|/gm)].map((m) => ({ code: m[1], status: m[2] }));
  const codes = Object.keys(errorCodes).sort();
  assert.deepEqual(documented.map((d) => d.code).sort(), codes);
  for (const d of documented) {
    const entry = (errorCodes as Record<string, { status?: number }>)[d.code ?? ''];
    assert.equal(d.status === '' ? undefined : Number(d.status), entry?.status, `status of ${d.code}`);
  }
});

test('a TunnelError takes its status and message from the registry and keeps its cause', () => {
  const cause = new Error('boom');
  const err = new TunnelError('PT_ERR_CLUSTER_NOT_CONNECTED', undefined, { cause });
  assert.equal(err.status, 503);
  assert.equal(err.message, 'cluster not connected');
  assert.equal(err.cause, cause);
  assert.ok(err instanceof Error);
  assert.ok(isTunnelError(err, 'PT_ERR_CLUSTER_NOT_CONNECTED'));
  assert.equal(isTunnelError(new Error('x')), false);
  assert.equal(new TunnelError('PT_ERR_HANDSHAKE').status, undefined);
  assert.equal(new TunnelError('PT_ERR_AUTH_REJECTED', 'nope', { status: 418 }).status, 418);
});
