import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type net from 'node:net';
import { createSession, type Session, type Stream } from '@pipeops/tunnel-mux';
import { afterOutput } from '../src/index.ts';
import { tcpPair } from './helpers/tcp-pair.ts';

/** Two mux sessions over a real TCP connection on 127.0.0.1. */
async function sessions(t: TestContext): Promise<{ near: Session; far: Session; socket: net.Socket }> {
  const tcp = await tcpPair();
  const near = createSession(tcp.near, { client: true, keepAliveIntervalMs: 0 });
  const far = createSession(tcp.far, { client: false, keepAliveIntervalMs: 0 });
  t.after(() => {
    near.destroy();
    far.destroy();
    return tcp.close();
  });
  return { near, far, socket: tcp.near };
}

test('a task queued after output runs once the turn’s frames have left, not before', async (t) => {
  const { near, far, socket } = await sessions(t);
  const accepted = once(far, 'stream') as Promise<[Stream]>;
  const stream = near.open();
  stream.write('hello');
  const [remote] = await accepted;
  const before = socket.bytesWritten;
  const seen: { corked: number; pending: number; written: number }[] = [];
  const look = (): void => {
    seen.push({ corked: socket.writableCorked, pending: socket.writableLength, written: socket.bytesWritten - before });
  };
  const recorded = new Promise<void>((resolve) => {
    // What a relay does in one turn: its answer and FIN, then its record.
    stream.end(Buffer.alloc(1000, 1));
    queueMicrotask(look); // after the session's flush: the frames wait for the end of the turn
    afterOutput(() => {
      look();
      resolve();
    });
  });
  await recorded;
  const [inTurn, atTask] = seen;
  assert.ok(inTurn !== undefined && atTask !== undefined);
  // Within the turn nothing of the answer has reached the kernel yet.
  assert.ok(inTurn.written < 1012 + 12, `within the turn: ${JSON.stringify(inTurn)}`);
  // The data frame (12-byte header + 1,000 bytes) and the FIN went to the kernel before the task ran.
  assert.deepEqual({ corked: atTask.corked, pending: atTask.pending }, { corked: 0, pending: 0 });
  assert.ok(atTask.written >= 1012 + 12, `written ${atTask.written} bytes before the task`);
  remote.resume();
  await once(remote, 'end');
});

test('tasks run in the order queued, and one queued by a task runs in a later turn', async () => {
  const order: string[] = [];
  const done = new Promise<void>((resolve) => {
    setImmediate(() => order.push('immediate queued first'));
    afterOutput(() => order.push('a'));
    afterOutput(() => {
      order.push('b');
      setImmediate(() => order.push('immediate queued by b'));
      afterOutput(() => {
        order.push('c');
        resolve();
      });
    });
  });
  await done;
  assert.deepEqual(order, ['immediate queued first', 'a', 'b', 'immediate queued by b', 'c']);
});
