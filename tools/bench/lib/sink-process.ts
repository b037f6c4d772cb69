import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { SinkAddress } from '../scenarios/types.ts';

const SINK_PATH = fileURLToPath(new URL('../sink.ts', import.meta.url));
/** How long the sink may take to print READY: 30 s. */
const READY_TIMEOUT_MS = 30_000;

/** The sink child process and its addresses. `close()` ends it (stdin closed, then SIGKILL if needed). */
export interface SinkProcess extends SinkAddress {
  close(): Promise<void>;
}

/** Starts ../sink.ts with the same Node binary and waits for its READY line. */
export async function startSink(tcpWindowBytes: number): Promise<SinkProcess> {
  const child = spawn(process.execPath, [SINK_PATH, '--tcp-window', String(tcpWindowBytes)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const address = await readyLine(child);
    return {
      ...address,
      async close() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.stdin?.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
        await exited;
        clearTimeout(timer);
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

function readyLine(child: ChildProcess): Promise<SinkAddress> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => fail(new Error('bench sink: no READY line within 30 s')), READY_TIMEOUT_MS).unref();
    const onExit = (code: number | null): void => fail(new Error(`bench sink exited (code ${code}) before READY`));
    function fail(err: Error): void {
      cleanup();
      reject(err);
    }
    function cleanup(): void {
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.close();
    }
    child.once('exit', onExit);
    lines.on('line', (line) => {
      if (!line.startsWith('READY ')) return;
      cleanup();
      resolve(JSON.parse(line.slice('READY '.length)) as SinkAddress);
    });
  });
}
