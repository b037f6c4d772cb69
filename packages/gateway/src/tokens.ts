import { createHash, hash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { gatewayError } from './errors.ts';
import { verifyRunnerLimits, type RunnerLimits } from './runner-limits.ts';

/** An agent token: it lets one agent connect as `cluster`. */
export interface AgentTokenEntry {
  cluster: string;
  token_sha256?: string;
  token?: string;
}
/**
 * A runner token: it reaches the listed clusters (`"*"` = every cluster).
 * `groups` are impersonated (with the runner's user) by agents with
 * `access_as: runner`; `limits` override the gateway's runner limits.
 */
export interface RunnerTokenEntry {
  id: string;
  token_sha256?: string;
  token?: string;
  clusters: string[];
  groups?: string[];
  limits?: { max_streams?: number; requests_per_second?: number; burst?: number };
}
/** An admin token: it sees every cluster. */
export interface AdminTokenEntry {
  id?: string;
  token_sha256?: string;
  token?: string;
}
/** The tokens file's content. Give `token_sha256` (hex SHA-256 of the token) or, for development, `token`. */
export interface TokensConfig {
  agents?: AgentTokenEntry[];
  runners?: RunnerTokenEntry[];
  admins?: AdminTokenEntry[];
}

/** A verified agent. `tokenId` is a non-secret handle (first 12 hex of the digest's digest) for logs and revocation checks. */
export interface AgentIdentity {
  cluster: string;
  tokenId: string;
}
/** A verified runner. `limits` holds only what its entry sets; the gateway's defaults fill the rest. */
export interface RunnerIdentity {
  id: string;
  allClusters: boolean;
  clusters: ReadonlySet<string>;
  groups: readonly string[];
  limits: Partial<RunnerLimits>;
}

interface Stored<T> {
  digest: Buffer;
  value: T;
}

const CLUSTER_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const HEX64_RE = /^[0-9a-fA-F]{64}$/;
const RUNNER_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
// Kubernetes group names are free text; refuse what would break a header value or a comma-joined list.
const GROUP_RE = /^[\x21-\x2b\x2d-\x7e]([\x20-\x2b\x2d-\x7e]{0,251}[\x21-\x2b\x2d-\x7e])?$/;

/** SHA-256 of a token, hex, as the tokens file stores it. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Verified, immutable token set. Every lookup hashes the presented token
 * and compares it with *every* stored digest using `crypto.timingSafeEqual`,
 * so timing reveals neither which entry matched nor how much of it.
 */
export class TokenStore {
  readonly #agents: Stored<AgentIdentity>[];
  readonly #runners: Stored<RunnerIdentity>[];
  /** The runners by id (ids are unique): looked up on every stream the gateway opens. */
  readonly #runnersById: ReadonlyMap<string, RunnerIdentity>;
  readonly #admins: Stored<string>[];

  /** Validates `config`; throws TunnelError `PT_ERR_TOKENS_INVALID` naming the entry (and `source`). */
  constructor(config: unknown, source = 'tokens') {
    const fail = (where: string, why: string): never => {
      throw gatewayError('PT_ERR_TOKENS_INVALID', `${source}: ${where}: ${why}`);
    };
    if (config === null || config === undefined) config = {};
    if (typeof config !== 'object' || Array.isArray(config)) fail('top level', 'must be a mapping with agents, runners, admins');
    const c = config as Record<string, unknown>;
    for (const key of Object.keys(c)) if (!['agents', 'runners', 'admins'].includes(key)) fail(key, 'unknown key (expected agents, runners, admins)');
    const list = (key: string): Record<string, unknown>[] => {
      const v = c[key];
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v)) fail(key, 'must be a list');
      return (v as unknown[]).map((e, i) => {
        if (e === null || typeof e !== 'object' || Array.isArray(e)) fail(`${key}[${i}]`, 'must be a mapping');
        return e as Record<string, unknown>;
      });
    };
    const seen = new Map<string, string>();
    const digestOf = (e: Record<string, unknown>, where: string): Buffer => {
      const hasHash = e.token_sha256 !== undefined;
      const hasToken = e.token !== undefined;
      if (hasHash === hasToken) fail(where, 'give exactly one of token_sha256 and token');
      let hex: string;
      if (hasHash) {
        if (typeof e.token_sha256 !== 'string' || !HEX64_RE.test(e.token_sha256)) fail(where, 'token_sha256 must be 64 hex characters');
        hex = (e.token_sha256 as string).toLowerCase();
      } else {
        if (typeof e.token !== 'string' || e.token.length < 8) fail(where, 'token must be a string of at least 8 characters');
        hex = hashToken(e.token as string);
      }
      const prev = seen.get(hex);
      if (prev !== undefined) fail(where, `same token as ${prev}`);
      seen.set(hex, where);
      return Buffer.from(hex, 'hex');
    };
    const clusterName = (v: unknown, where: string): string => {
      if (typeof v !== 'string' || !CLUSTER_RE.test(v)) fail(where, 'cluster must be a name of letters, digits, ".", "_", "-" (1-253 chars)');
      return v as string;
    };

    this.#agents = list('agents').map((e, i) => {
      const where = `agents[${i}]`;
      checkKeys(e, ['cluster', 'token_sha256', 'token'], where, fail);
      const cluster = clusterName(e.cluster, where);
      const digest = digestOf(e, where);
      return { digest, value: { cluster, tokenId: tokenIdOf(digest) } };
    });
    const ids = new Map<string, string>();
    this.#runners = list('runners').map((e, i) => {
      const where = `runners[${i}]`;
      checkKeys(e, ['id', 'token_sha256', 'token', 'clusters', 'groups', 'limits'], where, fail);
      if (typeof e.id !== 'string' || !RUNNER_ID_RE.test(e.id))
        fail(where, 'id must be 1-128 letters, digits, ".", "_", "-" (it becomes the user name pipeops:runner:<id>)');
      const groups = e.groups ?? [];
      if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string' && GROUP_RE.test(g))) {
        fail(`${where}.groups`, 'must be a list of group names (1-253 printable characters, no commas)');
      }
      let limits: Partial<RunnerLimits> = {};
      try {
        limits = verifyRunnerLimits(e.limits, `${where}.limits`);
      } catch (err) {
        fail(where, (err as Error).message);
      }
      if (!Array.isArray(e.clusters)) fail(where, 'clusters must be a list of cluster names or ["*"]');
      const raw = e.clusters as unknown[];
      const allClusters = raw.includes('*');
      const clusters = new Set(raw.filter((v) => v !== '*').map((v, j) => clusterName(v, `${where}.clusters[${j}]`)));
      const prev = ids.get(e.id as string);
      if (prev !== undefined) fail(where, `same id as ${prev}`);
      ids.set(e.id as string, where);
      return { digest: digestOf(e, where), value: { id: e.id as string, allClusters, clusters, groups: [...(groups as string[])], limits } };
    });
    this.#runnersById = new Map(this.#runners.map((r) => [r.value.id, r.value]));
    this.#admins = list('admins').map((e, i) => {
      const where = `admins[${i}]`;
      checkKeys(e, ['id', 'token_sha256', 'token'], where, fail);
      if (e.id !== undefined && typeof e.id !== 'string') fail(where, 'id must be a string');
      return { digest: digestOf(e, where), value: typeof e.id === 'string' ? e.id : `admin-${i}` };
    });
  }

  /** Counts, for logs. */
  get counts(): { agents: number; runners: number; admins: number } {
    return { agents: this.#agents.length, runners: this.#runners.length, admins: this.#admins.length };
  }

  /** The agent this token belongs to, or undefined. */
  verifyAgent(token: string | undefined): AgentIdentity | undefined {
    return match(this.#agents, token);
  }

  /** The runner this token belongs to, or undefined. */
  verifyRunner(token: string | undefined): RunnerIdentity | undefined {
    return match(this.#runners, token);
  }

  /** The runner with this id (ids are unique in a tokens file), or undefined. */
  runnerById(id: string): RunnerIdentity | undefined {
    return this.#runnersById.get(id);
  }

  /** The admin's id when this token is an admin token, or undefined. */
  verifyAdmin(token: string | undefined): string | undefined {
    return match(this.#admins, token);
  }

  /** True while an agent token with this id still maps to `cluster` (used after a reload). */
  agentStillValid(tokenId: string, cluster: string): boolean {
    return this.#agents.some((a) => a.value.tokenId === tokenId && a.value.cluster === cluster);
  }
}

/** Reads and validates a YAML tokens file; throws TunnelError `PT_ERR_TOKENS_INVALID`. */
export async function loadTokensFile(path: string): Promise<TokenStore> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw gatewayError('PT_ERR_TOKENS_INVALID', `${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch {
    // The YAML error message may quote a line of the file (a token): keep it out of the message.
    throw gatewayError('PT_ERR_TOKENS_INVALID', `${path}: not valid YAML`, { cause: new Error('YAML parse error') });
  }
  return new TokenStore(value, path);
}

/** Extracts the token of an `Authorization: Bearer …` header. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m?.[1];
}

function match<T>(entries: Stored<T>[], token: string | undefined): T | undefined {
  if (token === undefined || token === '') return undefined;
  // One-shot: no Hash object per request.
  const presented = hash('sha256', token, 'buffer');
  let found: T | undefined;
  // No early exit: every digest is compared, matched or not.
  for (const e of entries) {
    if (timingSafeEqual(presented, e.digest) && found === undefined) found = e.value;
  }
  return found;
}

function tokenIdOf(digest: Buffer): string {
  return createHash('sha256').update(digest).digest('hex').slice(0, 12);
}

function checkKeys(e: Record<string, unknown>, allowed: string[], where: string, fail: (w: string, why: string) => never): void {
  for (const k of Object.keys(e)) if (!allowed.includes(k)) fail(where, `unknown key ${JSON.stringify(k)} (expected ${allowed.join(', ')})`);
}
