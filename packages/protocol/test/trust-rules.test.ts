import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import pino from 'pino';
import {
  createAuditSink,
  encodePreamble,
  findImpersonationHeader,
  isImpersonationHeader,
  kubeStatus,
  readPreamble,
  statusReason,
  NO_AUDIT_TARGET,
  type AuditRecord,
} from '../src/index.ts';

test('impersonation headers are found in any case, anywhere in the list, and when a Trailer header announces one', () => {
  assert.equal(findImpersonationHeader(['Accept', 'x', 'iMpErSoNaTe-GrOuP', 'system:masters']), 'iMpErSoNaTe-GrOuP');
  assert.equal(findImpersonationHeader(['Impersonate-Extra-Scopes', 'a']), 'Impersonate-Extra-Scopes');
  assert.equal(findImpersonationHeader(['Trailer', 'Expires, Impersonate-Uid']), 'Impersonate-Uid');
  assert.equal(findImpersonationHeader(['Accept', 'impersonate-user', 'X-Impersonate-User', 'jane']), undefined, 'a value or a longer name is not the header');
  assert.equal(isImpersonationHeader('impersonate-'), false);
});

test("the Status body is the API server's shape with the reason of each code", () => {
  assert.deepEqual(kubeStatus(429, 'slow down'), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'slow down',
    reason: 'TooManyRequests',
    code: 429,
  });
  assert.equal(statusReason(403), 'Forbidden');
  assert.equal(statusReason(418), 'BadRequest');
  assert.equal(statusReason(599), 'InternalError');
});

test('a preamble carries the runner groups, and groups that are not a list of strings are refused', async () => {
  const s = new PassThrough();
  s.end(Buffer.concat([encodePreamble({ v: 1, kind: 'http', requestId: 'r', runnerId: 'r1', groups: ['a', 'b'] }), Buffer.from('GET / HTTP/1.1\r\n')]));
  assert.deepEqual((await readPreamble(s)).groups, ['a', 'b']);
  const bad = new PassThrough();
  bad.end('{"v":1,"kind":"http","requestId":"r","groups":"admins"}\n');
  await assert.rejects(readPreamble(bad), /groups must be a list of strings/);
});

const record = (requestId: string): AuditRecord => ({
  event: 'audit',
  side: 'agent',
  time: new Date().toISOString(),
  requestId,
  runnerId: 'r1',
  cluster: 'c1',
  method: 'GET',
  path: '/api',
  ...NO_AUDIT_TARGET,
  status: 200,
  bytesIn: 0,
  bytesOut: 1,
  ms: 1,
  upgraded: false,
  decision: 'allowed',
});

test('a file audit sink appends one JSON line per record to a file only its owner can read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'audit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const warnings: unknown[] = [];
  const logger = {
    info() {},
    warn(o: object) {
      warnings.push(o);
    },
  };
  const file = join(dir, 'audit.jsonl');
  const sink = createAuditSink({ file, logger });
  sink.write(record('one'));
  sink.write(record('two'));
  await sink.close();
  const lines = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditRecord);
  assert.deepEqual(
    lines.map((r) => r.requestId),
    ['one', 'two'],
  );
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(sink.dropped, 0);
  assert.deepEqual(warnings, []);
});

test('a file audit sink that falls behind drops records and counts them instead of growing memory, and says so once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'audit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const warnings: Array<{ event?: string }> = [];
  const sink = createAuditSink({
    file: join(dir, 'audit.jsonl'),
    logger: {
      info() {},
      warn(o: object) {
        warnings.push(o);
      },
    },
    maxBufferedBytes: 1,
  });
  for (let i = 0; i < 100; i++) sink.write(record(`r${i}`));
  assert.ok(sink.dropped > 0 && sink.dropped < 100, `dropped ${sink.dropped}`);
  assert.deepEqual(
    warnings.map((w) => w.event),
    ['audit_file_behind'],
  );
  await sink.close();
});

test('on a pino logger the audit sink writes the very line pino would, bindings and level filter included', () => {
  const lines: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  const root = pino({ level: 'info', base: { pid: 7 }, formatters: { log: (o: Record<string, unknown>) => o } }, dest);
  const child = root.child({ component: 'kube', streamId: 3 });
  const sink = createAuditSink({ logger: child, message: 'kube request' });
  const rec = { ...record('line-1'), error: 'say "hi"\n', rule: 'read_only' as const, decision: 'denied' as const };
  sink.write(rec);
  sink.write({ ...rec, requestId: 'line-2' }, 'warn');
  child.info(rec, 'kube request');
  assert.equal(lines.length, 3);
  const [fast, fastWarn, own] = lines.map((l) => {
    assert.ok(l.endsWith('}\n'));
    return JSON.parse(l) as Record<string, unknown>;
  });
  for (const o of [fast, own]) delete o!.time;
  assert.deepEqual(fast, own, "the same fields and values as pino's own line");
  assert.deepEqual(Object.keys(fast!), Object.keys(own!), 'in the same order');
  assert.equal(fastWarn!.level, 40);
  assert.match(lines[1]!, /^\{"level":40,"time":\d+,"pid":7,"component":"kube","streamId":3,"event":"audit",/);
  lines.length = 0;
  child.level = 'warn';
  sink.write(rec);
  sink.write(rec, 'warn');
  assert.equal(lines.length, 1, 'a record below the logger level is not written');
});

test('the log-stream audit sink writes each record at info, and failures at warn', () => {
  const seen: Array<[string, object, string]> = [];
  const sink = createAuditSink({ logger: { info: (o, m) => seen.push(['info', o, m]), warn: (o, m) => seen.push(['warn', o, m]) }, message: 'kube request' });
  sink.write(record('a'));
  sink.write({ ...record('b'), status: 502 }, 'warn');
  assert.deepEqual(
    seen.map(([level, o, m]) => [level, (o as AuditRecord).requestId, m]),
    [
      ['info', 'a', 'kube request'],
      ['warn', 'b', 'kube request'],
    ],
  );
  assert.equal(sink.destination, 'log');
});
