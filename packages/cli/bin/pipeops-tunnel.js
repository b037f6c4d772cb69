#!/usr/bin/env node
// The workspace's launcher of `pipeops-tunnel`: the CLI is TypeScript run
// natively by Node 24 (type stripping). See launcher.js for what every
// launcher does; the published package runs lib/ (pipeops-tunnel-published.js).
import { launch } from './launcher.js';

await launch(() => import('../src/main.ts'));
