import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../src/main.ts';
test('main returns an exit code', async () => { assert.equal(typeof (await main([])), 'number'); });
