// `pnpm bundle`: the `pipeops-tunnel` command as the packages ship it, one
// JavaScript bundle (esbuild) in packages/cli/dist/; prints the launcher that
// runs it (`node <launcher> connect …`). `pnpm pack:all` and `pnpm bench`
// build it.
//
// The workspace runs ~170 TypeScript modules and undici's, pino's, ws'…
// files one by one; V8 keeps every module's source text for as long as the
// process runs, and Node's module loader its records. An idle agent started
// from the bundle held ~11 MB less RSS (docs/benchmarks.md, "Idle agent"):
// the code it loads is the code it can run, minified, in a few files. The
// bundle is split by command (each command module is its own entry, loaded
// by main's dynamic import), so an agent never loads the gateway's code.
//
// Our sources load a few packages lazily with `createRequire(import.meta.url)(…)`
// (undici's parts, node-forge for `--dev`, ioredis for a fleet): esbuild
// cannot see those, and in a bundle `import.meta.url` is the chunk's, not
// the package's. The plugin below turns each such call into a plain
// `require(…)` that esbuild bundles (still evaluated only when called).
// pino-pretty stays outside: it is loaded only for a terminal, and the
// `pipeops-tunnel` package depends on it, so the chunk's own require finds it
// where npm installed the package; where it is absent (the container image
// carries the package alone) the command logs JSON lines.
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build, type Metafile, type Plugin } from 'esbuild';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** Where the bundle is written by default: the CLI package's dist/ (its published launcher runs dist/main.js). */
export const BUNDLE_DIR = join(ROOT, 'packages', 'cli', 'dist');

/** The published package's launcher, which runs the bundle in {@link BUNDLE_DIR}. */
export const PUBLISHED_LAUNCHER = join(ROOT, 'packages', 'cli', 'bin', 'pipeops-tunnel-published.js');

/** Packages the bundle leaves to the runtime's module resolution (dependencies of the `pipeops-tunnel` package). */
const EXTERNAL = ['pino-pretty'];

/** `createRequire(import.meta.url)('<specifier>')` in our sources. */
const LAZY_REQUIRE = /createRequire\(import\.meta\.url\)\((['"])([^'"]+)\1\)/g;

/**
 * Rewrites our sources' lazy requires into `require(…)` calls esbuild can
 * follow, and fails the build on any other use of `createRequire(import.meta.url)`
 * (e.g. a `load` function kept for later), which would resolve from the
 * bundle's folder at run time instead.
 */
const lazyRequires: Plugin = {
  name: 'lazy-requires',
  setup(b) {
    b.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]src[\\/].*\.ts$/ }, (args) => {
      const contents = readFileSync(args.path, 'utf8').replace(LAZY_REQUIRE, (_m, q: string, spec: string) => `require(${q}${spec}${q})`);
      if (contents.includes('createRequire(import.meta.url)')) {
        return { errors: [{ text: `${args.path}: createRequire(import.meta.url) not called at once with a string literal; the bundle cannot follow it` }] };
      }
      return { contents, loader: 'ts' };
    });
  },
};

/** What {@link bundleCli} wrote. */
export interface Bundle {
  /** The entry, main.js. */
  main: string;
  /** esbuild's account of every output file: its inputs and imports. */
  metafile: Metafile;
}

/**
 * Writes the bundle into `outDir` (emptied first). Its files sit one level
 * below the package root: the CLI reads its version from `../package.json`.
 */
export async function bundleCli(outDir: string = BUNDLE_DIR): Promise<Bundle> {
  rmSync(outDir, { recursive: true, force: true });
  const { metafile } = await build({
    entryPoints: [join(ROOT, 'packages', 'cli', 'src', 'main.ts')],
    outdir: outDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    minify: true,
    legalComments: 'none',
    external: EXTERNAL,
    // The CommonJS packages (undici, pino, ws…) call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __ptRequire } from 'node:module'; const require = __ptRequire(import.meta.url);" },
    entryNames: '[name]',
    // Flat: every file one level below the package, where version.ts finds ../package.json.
    chunkNames: '[name]-[hash]',
    plugins: [lazyRequires],
    logLevel: 'warning',
    metafile: true,
  });
  return { main: join(outDir, 'main.js'), metafile };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  parseArgs({ options: {} });
  await bundleCli();
  // What runs it: `node <this> connect …`.
  process.stdout.write(`${PUBLISHED_LAUNCHER}\n`);
}
