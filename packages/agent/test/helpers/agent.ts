import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { createAgent } from '../../src/agent.ts';
import type { Agent } from '../../src/agent.ts';
import type { AgentOptions } from '../../src/config.ts';
import type { CapturedLogs } from './log-capture.ts';
import { captureLogs } from './log-capture.ts';
import { testOptions } from './options.ts';

export interface StartedAgent {
  agent: Agent;
  logs: CapturedLogs;
  registry: Registry;
  options: AgentOptions;
}

/** Creates and starts an agent, closed after the test. */
export async function startAgent(t: TestContext, overrides: Partial<AgentOptions>): Promise<StartedAgent> {
  const logs = captureLogs('debug');
  const registry = new Registry();
  const options = testOptions(overrides);
  const agent = createAgent(options, { logger: logs.logger, registry });
  t.after(() => agent.close(1_000));
  await agent.start();
  return { agent, logs, registry, options };
}

/** Resolves on the agent's next 'connected'. */
export function nextConnected(agent: Agent): Promise<unknown> {
  return once(agent, 'connected');
}

/** Writes `content` to a temp file removed after the test. */
export function tempFile(t: TestContext, name: string, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'agent-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

/** Polls `cond` every 10 ms until true or `timeoutMs` passes (then throws `what`). */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reads a Duplex to its end. */
export async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}
