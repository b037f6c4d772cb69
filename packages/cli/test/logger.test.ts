import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createLogger, redactSecrets } from '../src/logger.ts';

function capture(): { stream: Writable; records: () => Array<Record<string, unknown>>; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return {
    stream,
    text: () => text,
    records: () =>
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

test('tokens and authorization headers are redacted wherever a library logs them', () => {
  const out = capture();
  const log = createLogger({ level: 'debug', pretty: false, destination: out.stream });
  log.info({ token: 's1-secret' }, 'top');
  log.info({ options: { token: 's2-secret' }, req: { headers: { authorization: 'Bearer s3-secret' } } }, 'nested');
  log.child({ component: 'x' }).debug({ headers: { authorization: 'Bearer s4-secret', Authorization: 'Bearer s5-secret' } }, 'headers');
  log.info({ tls: { key: 's6-secret' }, config: { pipeops: { token: 's7-secret' } } }, 'deeper');
  assert.doesNotMatch(out.text(), /secret/);
  const [top, nested, headers] = out.records();
  assert.equal(top?.token, '[Redacted]');
  assert.deepEqual(nested?.req, { headers: { authorization: '[Redacted]' } });
  assert.equal((headers?.headers as Record<string, unknown> | undefined)?.authorization, '[Redacted]');
});

test('the level filters records', () => {
  const out = capture();
  const log = createLogger({ level: 'warn', pretty: false, destination: out.stream });
  log.info('hidden');
  log.warn('shown');
  assert.deepEqual(
    out.records().map((r) => r.msg),
    ['shown'],
  );
});

test('redaction censors a copy: the logged object is never changed, and a record with nothing to hide is passed on as it is', () => {
  const secretive = { event: 'x', req: { headers: { authorization: 'Bearer s8-secret', accept: '*/*' } }, tags: ['a'] };
  const censored = redactSecrets(secretive);
  assert.equal(secretive.req.headers.authorization, 'Bearer s8-secret');
  assert.deepEqual(censored, { event: 'x', req: { headers: { authorization: '[Redacted]', accept: '*/*' } }, tags: ['a'] });
  assert.equal(censored.tags, secretive.tags);
  const plain = { event: 'audit', requestId: 'r1', status: 200, nested: { verb: 'get' } };
  assert.equal(redactSecrets(plain), plain);
});

/**
 * Runs `body` in a child whose stdout is a file, after `const log = createLogger(...)` (JSON lines);
 * `OUT` in the body is the file's path. Resolves to the records in the file once the child has exited.
 */
async function loggedByChild(t: { after(fn: () => void): void }, prelude: string, body: string): Promise<Array<Record<string, unknown>>> {
  const dir = mkdtempSync(join(tmpdir(), 'pt-logger-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'stdout.log');
  const module = fileURLToPath(new URL('../src/logger.ts', import.meta.url));
  const script = `
    import fs from 'node:fs';
    import { createLogger } from ${JSON.stringify(module)};
    const OUT = ${JSON.stringify(out)};
    ${prelude}
    const log = createLogger({ level: 'info', pretty: false });
    ${body}`;
  const fd = openSync(out, 'w');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0);
  return readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('batched stdout records reach a file within the flush period, without an fsync each time, and the rest at exit', async (t) => {
  // The child counts fsync calls (sonic-boom calls fs.fsyncSync), logs a record, and logs a second one
  // only once the first is in the file: the flush period passed without a sync. The second goes at exit.
  const records = await loggedByChild(
    t,
    `let syncs = 0;
    const fsyncSync = fs.fsyncSync;
    fs.fsyncSync = (fd) => { syncs++; return fsyncSync(fd); };`,
    `log.info({ n: 1 }, 'first');
    while (!fs.readFileSync(OUT, 'utf8').includes('"n":1')) await new Promise((r) => setTimeout(r, 10));
    log.info({ n: 2, syncsWhileRunning: syncs }, 'second');`,
  );
  assert.deepEqual(
    records.map((r) => r.n),
    [1, 2],
  );
  assert.equal(records[1]?.syncsWhileRunning, 0);
});

test('records logged faster than the flush period leave in whole batches, in order, before the period ends', async (t) => {
  // 300 records of ~200 bytes in one turn: a batch (8 KiB) is written as soon as it has gathered, so the
  // file holds whole records before the turn ends (the 100 ms timer cannot have run). A record logged
  // before pino's flush() is in the file at once; the rest leave at exit.
  const records = await loggedByChild(
    t,
    '',
    `const pad = 'x'.repeat(120);
    for (let n = 0; n < 300; n++) log.info({ n, pad }, 'many');
    const inTurn = fs.readFileSync(OUT, 'utf8');
    log.info({ n: 300, writtenInTurn: inTurn.split('\\n').length - 1, wholeLines: inTurn.endsWith('\\n') }, 'count');
    log.flush();
    log.info({ n: 301, flushed: fs.readFileSync(OUT, 'utf8').includes('"n":300') }, 'last');`,
  );
  assert.deepEqual(
    records.map((r) => r.n),
    Array.from({ length: 302 }, (_, i) => i),
  );
  const counted = records[300] as { writtenInTurn: number; wholeLines: boolean };
  assert.ok(counted.writtenInTurn >= 200, `only ${counted.writtenInTurn} of 300 records written within the turn`);
  assert.equal(counted.wholeLines, true);
  assert.equal(records[301]?.flushed, true);
});
