// Node's `http` module, loaded the CommonJS way. An ES `import … from
// 'node:http'` builds a module namespace from every export, and three of them
// (WebSocket, CloseEvent, MessageEvent) are lazy getters that load Node's
// bundled undici with web streams and http2: ~13 MB of RSS in every process
// that imports it, for code nothing here runs (docs/benchmarks.md). Every
// package takes `http` from here; a test keeps the relays' module graphs
// free of Node's bundled undici. (Type-only imports of node:http are erased
// and cost nothing.)
import { createRequire } from 'node:module';

/** `node:http`, without the ES-module namespace that evaluates its lazy exports. */
export const nodeHttp = createRequire(import.meta.url)('node:http') as typeof import('node:http');
