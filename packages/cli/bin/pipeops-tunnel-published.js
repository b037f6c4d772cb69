#!/usr/bin/env node
// The launcher of the published `pipeops-tunnel` package (package.json's
// publishConfig.bin): runs the command's bundle, dist/ (tools/bundle.ts),
// which `pnpm pack:all` builds. See launcher.js.
import { launch } from './launcher.js';

await launch(() => import('../dist/main.js'));
