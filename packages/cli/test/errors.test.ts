import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CliError, cliErrorCodes, ExitCode, exitCodeFor } from '../src/errors.ts';

test('every CLI error code is documented in the README with its exit code', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const [code, { exitCode }] of Object.entries(cliErrorCodes)) {
    assert.match(readme, new RegExp(`\\| \`${code}\` \\| ${exitCode} \\|`), `${code} is in the Error codes table`);
  }
});

test('library errors map to the documented exit codes', () => {
  const coded = (code: string): Error => Object.assign(new Error('x'), { code });
  assert.equal(exitCodeFor(coded('PT_ERR_AUTH_REJECTED')), ExitCode.authRejected);
  assert.equal(exitCodeFor(coded('PT_ERR_RECONNECT_EXHAUSTED')), ExitCode.reconnectExhausted);
  assert.equal(exitCodeFor(coded('PT_ERR_CONFIG')), ExitCode.invalidConfig);
  assert.equal(exitCodeFor(new CliError('PT_ERR_CLI_CONFIG_FILE', 'x')), ExitCode.invalidConfig);
  assert.equal(exitCodeFor(new Error('boom')), ExitCode.failure);
});
