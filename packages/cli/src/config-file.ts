import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { CliError } from './errors.ts';

/**
 * Reads a YAML (or JSON) configuration file. An empty file is an empty config.
 * @throws CliError PT_ERR_CLI_CONFIG_FILE when the file is unreadable, not YAML, or not a mapping.
 */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new CliError('PT_ERR_CLI_CONFIG_FILE', `config file ${path}: cannot be read (${reason})`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    throw new CliError('PT_ERR_CLI_CONFIG_FILE', `config file ${path}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new CliError('PT_ERR_CLI_CONFIG_FILE', `config file ${path}: must be a mapping of sections (agent, pipeops, ...)`);
  }
  return doc as Record<string, unknown>;
}
