#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript run natively by Node 24 (type stripping).
//
// The compile cache keeps the stripped sources and V8's code between runs
// (NODE_COMPILE_CACHE, else a folder under the system temp dir; the
// container image ships one filled at build time). A start that finds every
// module there never loads the TypeScript stripper, which otherwise stays in
// the process for its lifetime: ~30 MB of an idle agent's RSS.
import module from 'node:module';

module.enableCompileCache?.();
const { main } = await import('../src/main.ts');

const code = await main(process.argv.slice(2));
process.exitCode = code;
// A library handle left open must not keep a finished command alive: exit
// after a grace period. The timer is unref'd, so a clean exit is not delayed.
setTimeout(() => process.exit(code), 3_000).unref();
