import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TunnelError } from '@pipeops/tunnel-protocol';
import { AgentError, agentErrorCodes } from '../src/errors.ts';

test('every agent error code is documented in the README error table, and nothing else is', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const table = readme.slice(readme.indexOf('## Error codes'));
  const documented = [...table.matchAll(/^\| `(PT_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]).sort();
  assert.deepEqual(documented, Object.keys(agentErrorCodes).sort());
});

test('agent errors are TunnelErrors with a code, a status where one applies, and the cause kept', () => {
  const cause = new Error('root');
  const e = new AgentError('PT_ERR_AUTH_REJECTED', undefined, { cause });
  assert.ok(e instanceof TunnelError);
  assert.equal(e.code, 'PT_ERR_AUTH_REJECTED');
  assert.equal(e.status, 401);
  assert.equal(e.cause, cause);
  assert.equal(new AgentError('PT_ERR_CONFIG').status, undefined);
});
