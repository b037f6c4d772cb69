#!/usr/bin/env node
// The launcher of the published `pipeops-tunnel` package (package.json's
// publishConfig.bin): runs the compiled lib/. See launcher.js.
import { launch } from './launcher.js';

await launch(() => import('../lib/main.js'));
