#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript run natively by Node 24 (type stripping).
import { main } from '../src/main.ts';
process.exitCode = await main(process.argv.slice(2));
