// More runner entries in the gateway's tokens file than the harness writes
// (it writes one runner): the fairness scenario needs two runners with their
// own ids and tokens. The gateway watches the file and reloads it on change;
// we wait for its `tokens_reloaded` record before anyone uses the new tokens.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Proc } from '@pipeops/tunnel-e2e/harness/proc';

/** How long the gateway may take to notice the changed file and reload it: 15 s. */
const RELOAD_TIMEOUT_MS = 15_000;

/**
 * Adds one runner entry per id (a fresh token, every cluster, the tokens-file
 * `limits` given for it, if any) to the tokens
 * file `file` and waits until `gateway` logged a successful reload. Returns
 * the tokens by runner id.
 *
 * The entries are inserted as YAML flow mappings at the indentation of the
 * existing `runners:` items, so the rest of the file (agent and admin tokens
 * the harness does not hand out) is kept byte for byte.
 */
export async function addRunnerTokens(
  file: string,
  gateway: Proc,
  ids: readonly string[],
  limits: Readonly<Record<string, Record<string, number>>> = {},
): Promise<Map<string, string>> {
  const tokens = new Map(ids.map((id) => [id, randomBytes(24).toString('base64url')]));
  const text = readFileSync(file, 'utf8');
  const m = /^runners:\n(\s*)- /m.exec(text);
  if (m === null) throw new Error(`${file}: no block sequence under "runners:" to add runners to`);
  const entries = [...tokens]
    .map(([id, token]) => {
      const entry = { id, token, clusters: ['*'], ...(limits[id] !== undefined ? { limits: limits[id] } : {}) };
      return `${m[1]}- ${JSON.stringify(entry)}\n`;
    })
    .join('');
  const from = gateway.lines.length;
  writeFileSync(
    file,
    text.replace(/^runners:\n/m, () => `runners:\n${entries}`),
    { mode: 0o600 },
  );
  const rec = await gateway.waitForRecord('tokens reload', (r) => r.event === 'tokens_reloaded' || r.event === 'tokens_reload_failed', RELOAD_TIMEOUT_MS, from);
  if (rec.event !== 'tokens_reloaded') throw new Error(`gateway rejected the tokens file with runners ${ids.join(', ')}: ${JSON.stringify(rec)}`);
  return tokens;
}
