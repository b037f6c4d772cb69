import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The e2e/ folder. */
export const E2E_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const REPO_DIR = dirname(E2E_DIR);
/** Build outputs and run records (gitignored): e2e/.cache/. */
export const CACHE_DIR = join(E2E_DIR, '.cache');
/** The CLI's entry point, run with this Node. */
export const CLI = join(REPO_DIR, 'packages', 'cli', 'bin', 'pipeops-tunnel.js');
