#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript run natively by Node 24 (type stripping).
import { main } from '../src/main.ts';

const code = await main(process.argv.slice(2));
process.exitCode = code;
// A library handle left open must not keep a finished command alive: exit
// after a grace period. The timer is unref'd, so a clean exit is not delayed.
setTimeout(() => process.exit(code), 3_000).unref();
