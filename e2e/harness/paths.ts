import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The e2e/ folder. */
export const E2E_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const REPO_DIR = dirname(E2E_DIR);
/** Build outputs and run records (gitignored): e2e/.cache/. */
export const CACHE_DIR = join(E2E_DIR, '.cache');
/** The workspace's launcher of the CLI, which runs its TypeScript sources. */
export const SOURCES_CLI = join(REPO_DIR, 'packages', 'cli', 'bin', 'pipeops-tunnel.js');
/**
 * The CLI's entry point every gateway, agent, proxy and command of the run
 * starts, with this Node: the sources unless {@link runFromBundle} chose the
 * command's bundle as it ships (`pnpm e2e --bundle`, `pnpm bench`). A live
 * binding: read it when starting a process, not once at import.
 */
export let CLI = SOURCES_CLI;

/**
 * Builds the command's bundle (`pnpm bundle`, tools/bundle.ts) and, from now
 * on, starts every process from the launcher that runs it; returns that
 * launcher.
 */
export function runFromBundle(): string {
  // `pnpm bundle` prints the launcher that runs the bundle.
  CLI = execFileSync(process.execPath, [join(REPO_DIR, 'tools', 'bundle.ts')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  return CLI;
}
