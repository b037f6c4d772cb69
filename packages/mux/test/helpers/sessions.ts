import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { createSession, type Session, type SessionOptions } from '../../src/index.ts';
import { delayingPair, transports, type TransportKind, type TransportPair } from './transports.ts';

type Opts = Omit<SessionOptions, 'client'>;

export interface Connected {
  client: Session;
  server: Session;
  pair: TransportPair;
  kind: TransportKind;
}

/** A client and a server session over a fresh transport of `kind`; torn down by t.after(). */
export async function connect(t: TestContext, kind: TransportKind, clientOpts: Opts = {}, serverOpts: Opts = {}): Promise<Connected> {
  const pair = await kind.create();
  const client = createSession(pair.a, { keepAliveIntervalMs: 0, ...clientOpts, client: true });
  const server = createSession(pair.b, { keepAliveIntervalMs: 0, ...serverOpts, client: false });
  t.after(async () => {
    client.destroy();
    server.destroy();
    await pair.close();
  });
  return { client, server, pair, kind };
}

/** A writer session and a reader session over a pipe that delays each direction by `delayMs`; the reader's options are under test. */
export function overLongLink(t: TestContext, readerOpts: Opts, delayMs: number): { writerSide: Session; readerSide: Session } {
  const pair = delayingPair(delayMs);
  const writerSide = createSession(pair.a, { client: true, keepAliveIntervalMs: 0 });
  const readerSide = createSession(pair.b, { client: false, keepAliveIntervalMs: 0, ...readerOpts });
  t.after(async () => {
    writerSide.destroy();
    readerSide.destroy();
    await pair.close();
  });
  return { writerSide, readerSide };
}

/** Registers one test per transport, like hashicorp/yamux's testConnTypes. */
export function transportTest(name: string, body: (t: TestContext, kind: TransportKind) => Promise<void>, options: { timeout?: number } = {}): void {
  for (const kind of transports) {
    test(`${name} (${kind.name})`, { timeout: options.timeout ?? 30_000 }, (t) => body(t, kind));
  }
}
