// What both launchers of `pipeops-tunnel` do before and after the command:
// the V8 young-generation setting (per command), the compile cache, the exit code, and an
// exit that a forgotten library handle cannot hold up. The workspace's
// launcher (pipeops-tunnel.js) runs the TypeScript sources; the published
// package's (pipeops-tunnel-published.js) runs the bundle in dist/.
//
// The compile cache keeps compiled code (and, for the sources, their
// stripped text) between runs (NODE_COMPILE_CACHE, else a folder under the
// system temp dir). A start from the sources that finds every module there
// never loads the TypeScript stripper, which otherwise stays in the process
// for its lifetime: ~30 MB of an idle agent's RSS. The bundle is JavaScript:
// no stripper, and the cache only saves compile time.
import inspector from 'node:inspector';
import module from 'node:module';
import v8 from 'node:v8';

/** The oldest Node.js major the command runs on (undici 8 needs 22.19; 24 is the one tested). */
const MIN_NODE_MAJOR = 24;

/** The commands that relay traffic for as long as they run. */
const RELAY_COMMANDS = new Set(['gateway', 'connect', 'proxy']);

/** The young generation's semi-space cap of a relay command, MiB. */
export const RELAY_SEMI_SPACE_MIB = 8;

/**
 * Sizes V8's young generation for `command`. A relay (gateway, connect,
 * proxy) gets semi-spaces of up to {@link RELAY_SEMI_SPACE_MIB} MiB: with 64
 * requests in flight their objects outlived V8's initial 1 MiB and were
 * promoted, and GC took over a quarter of the gateway's and the agent's busy
 * time. 8 MiB took ~35 % of the gateway's and ~20 % of the agent's CPU per
 * small request, and bulk transfers lost nothing once uploads went into
 * pooled buffers (docs/benchmarks.md); V8's own 16 MiB cap
 * let per-TLS-record buffers (external memory) pile up between scavenges
 * until a mark-compact ran every ~80 ms during a transfer. The cap is read
 * only when the heap is set up, so the process replaces itself (execve: same
 * pid, descriptors and environment) with the flag on node's command line;
 * where that is not possible (Windows) or wanted (an inspector is open) the
 * young generation stays at its initial size (--semi-space-growth-factor=1),
 * as for every other command.
 * @param {string | undefined} command
 */
function youngGeneration(command) {
  // Not under a debugger (--inspect): the inspector would open twice and the first address would be dead.
  if (command !== undefined && RELAY_COMMANDS.has(command) && typeof process.execve === 'function' && inspector.url() === undefined) {
    const args = [...process.execArgv, `--max-semi-space-size=${RELAY_SEMI_SPACE_MIB}`, ...process.argv.slice(1)];
    process.execve(process.execPath, [process.execPath, ...args], process.env);
  }
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** @param {() => Promise<{ main(argv: string[]): Promise<number> }>} load */
export async function launch(load) {
  if (Number(process.versions.node.split('.')[0]) < MIN_NODE_MAJOR) {
    process.stderr.write(`pipeops-tunnel needs Node.js ${MIN_NODE_MAJOR} or later; this is ${process.version} (${process.execPath})\n`);
    process.exitCode = 2;
    return;
  }
  // The young generation (see youngGeneration), unless the user chose
  // one: --max-semi-space-size in NODE_OPTIONS or on node's command line.
  const semiSpaceChosen = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--max-semi-space-size'));
  if (!semiSpaceChosen) youngGeneration(process.argv[2]);

  module.enableCompileCache?.();
  const { main } = await load();

  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  // A library handle left open must not keep a finished command alive: exit
  // after a grace period. The timer is unref'd, so a clean exit is not delayed.
  setTimeout(() => process.exit(code), 3_000).unref();
}
