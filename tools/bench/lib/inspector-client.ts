// The V8 inspector of a child process, as the soak uses it: a forced full
// garbage collection (HeapProfiler.collectGarbage) and the process's own
// process.memoryUsage() read after it (Runtime.evaluate), over the inspector
// WebSocket the child opened because it was started with
// `--inspect=127.0.0.1:0` (see soak-rig.ts). Node prints the address on
// stderr:
// `Debugger listening on ws://127.0.0.1:PORT/UUID`.
import WebSocket from 'ws';

/** The inspector URL in a line Node printed on stderr, if it is that line. */
export function inspectorUrl(line: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1];
}

/** process.memoryUsage() of the inspected process, bytes. */
export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface Inspector {
  /** A full, synchronous GC in the inspected process (every generation). */
  collectGarbage(): Promise<void>;
  /** process.memoryUsage() in the inspected process, now. */
  memoryUsage(): Promise<MemoryUsage>;
  close(): void;
}

/** Connects to the inspector at `url` (ws://…); one client at a time, as Node allows. */
export async function connectInspector(url: string, name = url): Promise<Inspector> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
    if (msg.id === undefined) return; // an event
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error !== undefined) p?.reject(new Error(`inspector: ${msg.error.message}`));
    else p?.resolve(msg.result);
  });
  // An inspected process that exits closes the connection: calls in flight fail, later ones too.
  let closed = false;
  ws.on('close', (code, reason) => {
    closed = true;
    for (const p of pending.values()) p.reject(new Error(`inspector of ${name}: connection closed (${code} ${String(reason)})`));
    pending.clear();
  });
  ws.on('error', () => {});
  const call = (method: string, params: Record<string, unknown> = {}): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (closed) return reject(new Error(`inspector of ${name}: connection closed`));
      const id = ++seq;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return {
    async collectGarbage() {
      await call('HeapProfiler.collectGarbage');
    },
    async memoryUsage() {
      const r = (await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
        result: { value?: string };
        exceptionDetails?: unknown;
      };
      if (r.exceptionDetails !== undefined || typeof r.result.value !== 'string') throw new Error(`inspector: memoryUsage failed: ${JSON.stringify(r)}`);
      return JSON.parse(r.result.value) as MemoryUsage;
    },
    close() {
      ws.close();
    },
  };
}
