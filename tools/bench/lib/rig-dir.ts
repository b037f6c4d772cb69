// What every rig of real processes starts from: a temporary folder (with a
// logs/ folder for the processes' output) and the list of what to close,
// closed in reverse order of opening, the folder itself last.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RigDir {
  dir: string;
  logDir: string;
  /** Called by {@link RigDir.close}, last pushed first; a closer's failure does not stop the others. */
  closers: Array<() => Promise<unknown>>;
  close(): Promise<void>;
}

/** A fresh `<tmp>/<prefix>XXXXXX` folder with `logs/` in it, removed by close() after every other closer. */
export function rigDir(prefix: string): RigDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const closers: Array<() => Promise<unknown>> = [async () => rmSync(dir, { recursive: true, force: true })];
  const close = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => {});
  };
  return { dir, logDir, closers, close };
}
