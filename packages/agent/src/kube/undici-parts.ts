// The three parts of undici the agent uses, loaded from undici's own files.
// undici's package entry loads all of it (fetch, WebSocket, EventSource, web
// streams, caches, mocks, HTTP/2, worker threads): ~13 MB of an idle agent's
// RSS (docs/benchmarks.md) for code the agent never runs. The types are the
// package's own; the files are pinned by the exact undici version in
// package.json, and every test of the kube path loads them. Each is a
// literal `createRequire(import.meta.url)('…')`, the form the command's
// bundle follows (tools/bundle.ts).
import { createRequire } from 'node:module';
import type { Dispatcher, buildConnector as BuildConnector, Pool as UndiciPool } from 'undici';

/** undici's `Pool`. */
export const Pool = createRequire(import.meta.url)('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
export type Pool = UndiciPool;

/** undici's `buildConnector`. */
export const buildConnector = createRequire(import.meta.url)('undici/lib/core/connect.js') as typeof BuildConnector;

const requestOn = createRequire(import.meta.url)('undici/lib/api/api-request.js') as (
  this: Dispatcher,
  options: Dispatcher.RequestOptions,
) => Promise<Dispatcher.ResponseData>;

/** `dispatcher.request(options)`, which undici's package entry would have added to every dispatcher. */
export function request(dispatcher: Dispatcher, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
  return requestOn.call(dispatcher, options);
}
