import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { duplexPair, type Duplex } from 'node:stream';
import { ControlChannel, TunnelError, type ControlMessage } from '../src/index.ts';

function pair(t: { after(fn: () => void): void }): [Duplex, Duplex] {
  const [a, b] = duplexPair();
  t.after(() => {
    a.destroy();
    b.destroy();
  });
  return [a, b];
}

const hello: ControlMessage = { type: 'hello', agentId: 'a1', name: 'n', clusterName: 'c1', version: '1.0.0', labels: { env: 'dev' }, protocolVersion: 1 };
const status: ControlMessage = {
  type: 'status',
  at: new Date(0).toISOString(),
  uptimeSeconds: 1,
  streamsActive: 0,
  bytesIn: 1,
  bytesOut: 2,
  rttMs: 3,
  apiServer: { reachable: true, version: 'v1.31' },
};

test('messages sent on one side arrive in order and intact on the other', async (t) => {
  const [a, b] = pair(t);
  const tx = new ControlChannel(a);
  const rx = new ControlChannel(b);
  const got: ControlMessage[] = [];
  rx.on('message', (m) => got.push(m));
  for (const m of [
    hello,
    status,
    { type: 'welcome', sessionId: 's', gatewayVersion: 'g' },
    { type: 'reconnect', reason: 'drain' },
    { type: 'error', code: 'PT_ERR_X', message: 'm' },
    { type: 'error', code: 'PT_ERR_SESSION_REPLACED', message: 'm', replacedBy: 'session-2' },
  ] as ControlMessage[])
    tx.send(m);
  tx.close();
  await once(rx, 'close');
  assert.deepEqual(
    got.map((m) => m.type),
    ['hello', 'status', 'welcome', 'reconnect', 'error', 'error'],
  );
  assert.deepEqual(got[0], hello);
  assert.deepEqual(got[1], status);
  assert.deepEqual(got[4], { type: 'error', code: 'PT_ERR_X', message: 'm' }, 'no replacedBy appears where none was sent');
  assert.deepEqual(got[5], { type: 'error', code: 'PT_ERR_SESSION_REPLACED', message: 'm', replacedBy: 'session-2' });
});

test('a message split across many small chunks is reassembled', async (t) => {
  const [a, b] = pair(t);
  const rx = new ControlChannel(b);
  const line = Buffer.from(`${JSON.stringify(hello)}\n${JSON.stringify(status)}\n`);
  const got: ControlMessage[] = [];
  rx.on('message', (m) => got.push(m));
  for (let i = 0; i < line.length; i += 5) a.write(line.subarray(i, i + 5));
  a.end();
  await once(rx, 'close');
  assert.deepEqual(got, [hello, status]);
});

async function expectError(t: { after(fn: () => void): void }, input: string | Buffer, code: string, opts?: { maxLineBytes: number }): Promise<void> {
  const [a, b] = pair(t);
  const rx = new ControlChannel(b, opts);
  const messages: ControlMessage[] = [];
  rx.on('message', (m) => messages.push(m));
  const errored = once(rx, 'error');
  a.write(input);
  const [err] = (await errored) as [TunnelError];
  assert.ok(err instanceof TunnelError);
  assert.equal(err.code, code);
  assert.equal(rx.closed, true);
  assert.equal(rx.send(hello), false, 'a closed channel sends nothing');
  assert.deepEqual(messages, []);
}

test('a line that is not JSON closes the channel with PT_ERR_CONTROL_INVALID', async (t) => {
  await expectError(t, 'garbage\n', 'PT_ERR_CONTROL_INVALID');
});

test('an unknown message type is rejected', async (t) => {
  await expectError(t, '{"type":"launch-missiles"}\n', 'PT_ERR_CONTROL_INVALID');
});

test('a known type with wrong field types is rejected', async (t) => {
  await expectError(t, `${JSON.stringify({ ...hello, protocolVersion: '1' })}\n`, 'PT_ERR_CONTROL_INVALID');
  await expectError(t, `${JSON.stringify({ ...hello, labels: { a: 1 } })}\n`, 'PT_ERR_CONTROL_INVALID');
  await expectError(t, `${JSON.stringify({ ...status, apiServer: { reachable: 'yes' } })}\n`, 'PT_ERR_CONTROL_INVALID');
});

test('a line longer than maxLineBytes is rejected even before its newline arrives', async (t) => {
  await expectError(t, Buffer.alloc(2000, 0x61), 'PT_ERR_CONTROL_LINE_TOO_LARGE', { maxLineBytes: 1024 });
});

test('a malformed line with no error listener closes the channel without throwing', async (t) => {
  const [a, b] = pair(t);
  const rx = new ControlChannel(b);
  // events.once() would add an 'error' listener, so wait for 'close' by hand.
  const closed = new Promise<void>((resolve) => rx.on('close', resolve));
  a.write('nope\n');
  await closed;
  assert.equal(rx.closed, true);
});
