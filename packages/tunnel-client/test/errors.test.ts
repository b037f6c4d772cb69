import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { isTunnelError } from '@pipeops/tunnel-protocol';
import { ClientError, clientErrorCodes } from '../src/index.ts';

test('every client error code appears in the README error-code table with its status, and nothing else does', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Error codes'));
  const documented = [...section.matchAll(/^\| `(PT_ERR_[A-Z0-9_]+)` \| (\d*) *\|/gm)].map((m) => ({ code: m[1] ?? '', status: m[2] ?? '' }));
  assert.deepEqual(documented.map((d) => d.code).sort(), Object.keys(clientErrorCodes).sort());
  for (const d of documented) {
    const entry = (clientErrorCodes as Record<string, { status?: number }>)[d.code];
    assert.equal(d.status === '' ? undefined : Number(d.status), entry?.status, `status of ${d.code}`);
  }
});

test('a ClientError is a TunnelError with the registry status, its cause and an optional body', () => {
  const cause = new Error('econnrefused');
  const err = new ClientError('PT_ERR_CLIENT_DISCONNECTED', undefined, { cause });
  assert.ok(isTunnelError(err, 'PT_ERR_CLIENT_DISCONNECTED'));
  assert.equal(err.status, 503);
  assert.equal(err.cause, cause);
  assert.equal(err.message, clientErrorCodes.PT_ERR_CLIENT_DISCONNECTED.message);
  const http = new ClientError('PT_ERR_CLIENT_HTTP', 'nope', { status: 404, body: { reason: 'NotFound' } });
  assert.equal(http.status, 404);
  assert.deepEqual(http.body, { reason: 'NotFound' });
});
