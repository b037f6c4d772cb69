// What both launchers of `pipeops-tunnel` do before and after the command:
// the V8 young-generation setting, the compile cache, the exit code, and an
// exit that a forgotten library handle cannot hold up. The workspace's
// launcher (pipeops-tunnel.js) runs the TypeScript sources; the published
// package's (pipeops-tunnel-published.js) runs the compiled lib/.
//
// The compile cache keeps compiled code (and, for the sources, their
// stripped text) between runs (NODE_COMPILE_CACHE, else a folder under the
// system temp dir; the container image ships one filled at build time). A
// start that finds every module there never loads the TypeScript stripper,
// which otherwise stays in the process for its lifetime: ~30 MB of an idle
// agent's RSS.
import module from 'node:module';
import v8 from 'node:v8';

/** The oldest Node.js major the command runs on (undici 8 needs 22.19; 24 is the one tested). */
const MIN_NODE_MAJOR = 24;

/** @param {() => Promise<{ main(argv: string[]): Promise<number> }>} load */
export async function launch(load) {
  if (Number(process.versions.node.split('.')[0]) < MIN_NODE_MAJOR) {
    process.stderr.write(`pipeops-tunnel needs Node.js ${MIN_NODE_MAJOR} or later; this is ${process.version} (${process.execPath})\n`);
    process.exitCode = 2;
    return;
  }
  // The young generation stays at V8's initial size (1 MiB semi-spaces) unless
  // the user chose one (--max-semi-space-size in NODE_OPTIONS or on node's
  // command line). A relay allocates one short-lived buffer per TLS record; V8
  // counts them as external memory, and with the young generation grown to its
  // 16 MiB default they outlive so many scavenges that the external-memory
  // limit starts a full mark-compact every ~80 ms (measured: a quarter of the
  // gateway's and agent's CPU during an upload). Scavenging 1 MiB semi-spaces
  // frees them young: upload through gateway and agent ~245 -> ~300 MB/s,
  // gateway CPU per GiB 3.1 -> 1.8 s (docs/benchmarks.md).
  const semiSpaceChosen = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--max-semi-space-size'));
  if (!semiSpaceChosen) v8.setFlagsFromString('--semi-space-growth-factor=1');

  module.enableCompileCache?.();
  const { main } = await load();

  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  // A library handle left open must not keep a finished command alive: exit
  // after a grace period. The timer is unref'd, so a clean exit is not delayed.
  setTimeout(() => process.exit(code), 3_000).unref();
}
