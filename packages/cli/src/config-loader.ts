import { accessSync, constants } from 'node:fs';
import convict from 'convict';
import { readConfigFile } from './config-file.ts';
import { CliError } from './errors.ts';
import { registerFormats } from './formats.ts';

/** One schema entry, as convict takes it (formats are names registered in formats.ts). */
export interface SchemaEntry {
  doc: string;
  format: string | readonly string[];
  default: unknown;
  sensitive?: boolean;
  /** false: the key has no environment variable of its own (the loader reads it through `envHooks`). */
  env?: false;
}
/** A schema: sections of entries, nested. */
export interface Schema {
  [key: string]: SchemaEntry | Schema;
}

function isEntry(node: SchemaEntry | Schema): node is SchemaEntry {
  return Object.hasOwn(node, 'default');
}

/** The environment variable of a key: `PIPEOPS_` + the dotted path upper-cased with `_` (`pipeops.tls.enabled` → `PIPEOPS_PIPEOPS_TLS_ENABLED`). */
export function envNameFor(key: string): string {
  return `PIPEOPS_${key.toUpperCase().replaceAll('.', '_')}`;
}

/** Every key of a schema, dotted, with its entry. */
export function schemaKeys(schema: Schema, prefix = ''): Array<[string, SchemaEntry]> {
  const out: Array<[string, SchemaEntry]> = [];
  for (const [k, node] of Object.entries(schema)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    if (isEntry(node)) out.push([key, node]);
    else out.push(...schemaKeys(node, key));
  }
  return out;
}

function withEnv(schema: Schema, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, node] of Object.entries(schema)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    if (isEntry(node)) {
      const { env, ...rest } = node;
      out[k] = env === false ? { ...rest } : { ...rest, env: envNameFor(key) };
    } else {
      out[k] = withEnv(node, key);
    }
  }
  return out;
}

/** Reads one key's value from the environment text; returns `undefined` to report it invalid. */
export type EnvHook = (text: string) => unknown;

export interface LoadOptions {
  schema: Schema;
  /** Path of a YAML file (`--config`), or undefined for none. */
  file: string | undefined;
  /** The process environment (only the CLI reads process.env; tests pass their own). */
  env: Record<string, string | undefined>;
  /** Values from command-line flags, by dotted key; `undefined` values are ignored. */
  overrides: Record<string, unknown>;
  /** Keys whose environment variable needs custom parsing (`env: false` in the schema). */
  envHooks?: Record<string, EnvHook>;
  /** Appended to a validation message of that key, e.g. where to set it. */
  hints?: Record<string, string>;
}

/**
 * Loads a configuration with precedence flags > environment > file > defaults,
 * and validates it strictly (unknown keys in the file are errors).
 * @throws CliError PT_ERR_CLI_CONFIG (message names every bad key and why) or PT_ERR_CLI_CONFIG_FILE.
 */
export function loadConfig(opts: LoadOptions): convict.Config<Record<string, unknown>> {
  registerFormats();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.env)) if (v !== undefined && k.startsWith('PIPEOPS_')) env[k] = v;
  let conf: convict.Config<Record<string, unknown>>;
  try {
    // args: [] keeps convict away from process.argv; flags arrive as overrides.
    conf = convict(withEnv(opts.schema) as convict.Schema<Record<string, unknown>>, { env, args: [] });
    if (opts.file !== undefined) {
      const data = readConfigFile(opts.file);
      const shape = checkShape(data, opts.schema, '');
      if (shape.length > 0) throw configError(shape.map((line) => `${line} (in ${opts.file})`));
      conf.load(data);
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('PT_ERR_CLI_CONFIG', `invalid configuration: ${(err as Error).message}`, { cause: err });
  }
  const problems: string[] = [];
  for (const [key, hook] of Object.entries(opts.envHooks ?? {})) {
    const name = envNameFor(key);
    const text = env[name];
    if (text === undefined) continue;
    const value = hook(text);
    if (value === undefined) problems.push(`${key}: cannot parse ${name}`);
    else conf.set(key, value);
  }
  for (const [key, value] of Object.entries(opts.overrides)) {
    if (value !== undefined) conf.set(key, value);
  }
  if (problems.length > 0) throw configError(problems, opts.hints ?? {});
  try {
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    problems.push(...(err as Error).message.split('\n'));
  }
  if (problems.length > 0) throw configError(problems, opts.hints ?? {});
  return conf;
}

/**
 * Checks a file's structure against the schema before convict sees it:
 * unknown keys, a scalar where a section belongs, a section where a value
 * belongs. (convict would otherwise fail without naming the key.)
 */
function checkShape(data: Record<string, unknown>, schema: Schema, prefix: string): string[] {
  const problems: string[] = [];
  for (const [k, value] of Object.entries(data)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    const node = Object.hasOwn(schema, k) ? schema[k] : undefined;
    if (node === undefined) {
      problems.push(`${key}: unknown key`);
      continue;
    }
    const isMap = typeof value === 'object' && value !== null && !Array.isArray(value);
    if (isEntry(node)) {
      if (node.format === 'string-map') {
        if (!isMap) problems.push(`${key}: must be a map of strings`);
        else
          for (const [lk, lv] of Object.entries(value)) {
            if (typeof lv === 'object' && lv !== null) problems.push(`${key}: value of label "${lk}" must be a string`);
          }
      } else if (node.format === 'name-list') {
        if (!Array.isArray(value) || !value.every((x) => typeof x === 'string')) problems.push(`${key}: must be a list of names`);
      } else if (isMap || Array.isArray(value)) {
        problems.push(`${key}: must be a single value, not a ${isMap ? 'mapping' : 'list'}`);
      }
    } else if (!isMap) {
      problems.push(`${key}: must be a section (mapping) with keys ${Object.keys(node).join(', ')}`);
    } else {
      problems.push(...checkShape(value as Record<string, unknown>, node, key));
    }
  }
  return problems;
}

/** `key: file … cannot be read` for each non-empty path that is not readable. */
export function unreadableFiles(entries: ReadonlyArray<readonly [key: string, path: string]>): string[] {
  const problems: string[] = [];
  for (const [key, path] of entries) {
    if (path === '') continue;
    try {
      accessSync(path, constants.R_OK);
    } catch {
      problems.push(`${key}: file ${path} cannot be read`);
    }
  }
  return problems;
}

/** Builds the PT_ERR_CLI_CONFIG error for a list of `key: reason` lines. */
export function configError(problems: string[], hints: Record<string, string> = {}): CliError {
  const lines = problems.map((line) => {
    const key = /^([\w.]+): /.exec(line)?.[1];
    const hint = key === undefined ? undefined : hints[key];
    return hint === undefined ? line : `${line} (${hint})`;
  });
  return new CliError('PT_ERR_CLI_CONFIG', `invalid configuration:\n  ${lines.join('\n  ')}`);
}
