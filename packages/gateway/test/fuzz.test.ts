// Property-based fuzzing (fast-check) of the gateway's own parsers of
// untrusted input: the /ws/k8s JSON messages (runners) and the tokens file.
// Any input parses or is refused with a clean coded error; see
// test/fuzz.test.ts for the rest and for FUZZ_RUNS / FUZZ_SEED / FUZZ_PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fuzzParameters as params, isCodedError } from '@pipeops/tunnel-testkit';
import { parseMessage } from '../src/json-protocol/messages.ts';
import { TokenStore } from '../src/tokens.ts';

test('/ws/k8s messages: any text is a request, a cancel, or invalid with a PT_ERR_JSON_* code — never a throw', () => {
  const text = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.json({ maxDepth: 4 }),
    fc
      .dictionary(fc.constantFrom('id', 'method', 'path', 'query', 'headers', 'body', 'stream', 'cancel', 'timeout', 'extra'), fc.anything())
      .map((o) => JSON.stringify(o) ?? ''),
  );
  fc.assert(
    fc.property(text, (t) => {
      const m = parseMessage(t);
      if (m.kind === 'invalid') assert.ok(m.code.startsWith('PT_ERR_JSON_'), m.code);
      else assert.ok(m.kind === 'request' || m.kind === 'cancel');
    }),
    params(),
  );
});

test('the tokens file: any document is a token store or refused with PT_ERR_TOKENS_INVALID naming where', () => {
  const entry = fc.dictionary(
    fc.constantFrom('cluster', 'token', 'token_sha256', 'id', 'clusters', 'groups', 'limits', 'other'),
    fc.oneof(fc.string({ maxLength: 70 }), fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }), fc.anything()),
  );
  const doc = fc.oneof(
    fc.anything(),
    fc.dictionary(fc.constantFrom('agents', 'runners', 'admins', 'extra'), fc.oneof(fc.array(entry, { maxLength: 3 }), fc.anything())),
  );
  fc.assert(
    fc.property(doc, (d) => {
      try {
        new TokenStore(d, 'fuzz');
      } catch (err) {
        assert.ok(isCodedError(err, 'PT_ERR_TOKENS_INVALID'), `not a clean refusal: ${String(err)}`);
        assert.ok((err as Error).message.startsWith('fuzz: '), 'names the source');
      }
    }),
    params(),
  );
});
