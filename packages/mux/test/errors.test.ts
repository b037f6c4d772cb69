import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { MuxError, muxErrorCodes } from '../src/index.ts';

test('every error code in the registry is documented in the README error table', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const table = readme.slice(readme.indexOf('## Error codes'));
  for (const code of Object.keys(muxErrorCodes)) assert.match(table, new RegExp(`\\| \`${code}\` \\|`), code);
});

test('a MuxError is a real Error with a stable code and its cause kept', () => {
  const cause = new Error('socket hang up');
  const e = new MuxError('PT_ERR_MUX_TRANSPORT_CLOSED', undefined, { cause });
  assert.ok(e instanceof Error);
  assert.equal(e.code, 'PT_ERR_MUX_TRANSPORT_CLOSED');
  assert.equal(e.cause, cause);
  assert.equal(e.message, muxErrorCodes.PT_ERR_MUX_TRANSPORT_CLOSED);
  assert.notEqual(new MuxError('PT_ERR_MUX_PROTOCOL'), new MuxError('PT_ERR_MUX_PROTOCOL'));
});
