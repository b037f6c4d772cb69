// The shape of the shipped code: every package's src/ imports only what its
// package.json lists under `dependencies` (test-only packages such as the
// testkit stay out of the source graph), no module in src/ takes part in an
// import cycle, and the workspace packages depend on each other without one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGES = join(ROOT, 'packages');

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

interface ImportRef {
  specifier: string;
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const parsed = new Map<string, ImportRef[]>();

/** Static imports, re-exports and `import('…')` calls with a literal specifier (each file parsed once). */
function importsOf(file: string): ImportRef[] {
  let refs = parsed.get(file);
  if (refs === undefined) parsed.set(file, (refs = parseImports(file)));
  return refs;
}

function parseImports(file: string): ImportRef[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const refs: ImportRef[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      refs.push({ specifier: node.moduleSpecifier.text, typeOnly });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      refs.push({ specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length === 1 &&
      ts.isStringLiteralLike(node.arguments[0]!)
    ) {
      refs.push({ specifier: node.arguments[0].text, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return refs;
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

const builtins = new Set(builtinModules);
const isBuiltin = (s: string): boolean => s.startsWith('node:') || builtins.has(s) || builtins.has(packageName(s));

const packages = readdirSync(PACKAGES).map((dir) => ({
  dir: join(PACKAGES, dir),
  manifest: JSON.parse(readFileSync(join(PACKAGES, dir, 'package.json'), 'utf8')) as Manifest,
}));

/** Cycles in a directed graph, each reported once as a path that returns to its start. */
function cyclesOf(graph: Map<string, Set<string>>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const walk = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const s = state.get(next);
      if (s === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (s === undefined) walk(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) walk(node);
  return cycles;
}

test('every package in packages/ has a src/ the graph checks can read', () => {
  assert.ok(packages.length >= 6, `found ${packages.length} packages`);
  for (const p of packages) assert.ok(sourceFiles(join(p.dir, 'src')).length > 0, `${p.manifest.name} has no sources`);
});

test('src/ of every package imports only its own dependencies and Node built-ins, never a test-only package', () => {
  const wrong: string[] = [];
  for (const { dir, manifest } of packages) {
    const allowed = new Set(Object.keys(manifest.dependencies ?? {}));
    for (const file of sourceFiles(join(dir, 'src'))) {
      for (const ref of importsOf(file)) {
        if (ref.specifier.startsWith('.') || isBuiltin(ref.specifier)) continue;
        const name = packageName(ref.specifier);
        if (allowed.has(name)) continue;
        // A type-only import needs the package's types at build time only.
        if (ref.typeOnly && manifest.devDependencies?.[name] !== undefined) continue;
        wrong.push(`${relative(ROOT, file)} imports ${ref.specifier}, not in ${manifest.name}'s dependencies`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

test('no module in any package src/ is part of an import cycle, type-only imports included', () => {
  const graph = new Map<string, Set<string>>();
  for (const { dir } of packages) {
    for (const file of sourceFiles(join(dir, 'src'))) {
      const edges = new Set<string>();
      for (const ref of importsOf(file)) {
        if (!ref.specifier.startsWith('.')) continue;
        edges.add(relative(ROOT, resolve(dirname(file), ref.specifier)));
      }
      graph.set(relative(ROOT, file), edges);
    }
  }
  const dangling = [...graph.values()].flatMap((e) => [...e]).filter((to) => !graph.has(to));
  assert.deepEqual(dangling, [], 'relative imports name files that exist (with their .ts extension)');
  assert.deepEqual(
    cyclesOf(graph).map((c) => c.join(' -> ')),
    [],
  );
});

test('the workspace packages depend on each other without a cycle', () => {
  const names = new Set(packages.map((p) => p.manifest.name));
  const graph = new Map(packages.map((p) => [p.manifest.name, new Set(Object.keys(p.manifest.dependencies ?? {}).filter((d) => names.has(d)))]));
  assert.deepEqual(
    cyclesOf(graph).map((c) => c.join(' -> ')),
    [],
  );
});

test('the cycle finder reports a cycle it is shown and none in a chain', () => {
  const cyclic = new Map([
    ['a', new Set(['b'])],
    ['b', new Set(['c'])],
    ['c', new Set(['a'])],
  ]);
  assert.deepEqual(cyclesOf(cyclic), [['a', 'b', 'c', 'a']]);
  const chain = new Map([
    ['a', new Set(['b'])],
    ['b', new Set(['c'])],
    ['c', new Set<string>()],
  ]);
  assert.deepEqual(cyclesOf(chain), []);
});

// The branded error bases: every error a package throws has a stable `code`
// from a registry its README lists (TunnelError and the registries built on
// it; mux and the CLI below the protocol keep their own, MuxError and CliError).
const ERROR_BASES = new Set(['TunnelError', 'MuxError', 'CliError']);

test('every error class in a package src/ extends one of the branded error bases, never Error itself', () => {
  const offenders: string[] = [];
  for (const pkg of readdirSync(PACKAGES)) {
    const src = join(PACKAGES, pkg, 'src');
    if (!statSync(src, { throwIfNoEntry: false })?.isDirectory()) continue;
    for (const file of sourceFiles(src)) {
      const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (ts.isClassDeclaration(node) && node.name !== undefined && !ERROR_BASES.has(node.name.text)) {
          for (const clause of node.heritageClauses ?? []) {
            for (const t of clause.types) {
              const base = t.expression.getText(source);
              if (/^(Error|TypeError|RangeError)$/.test(base)) offenders.push(`${relative(ROOT, file)}: ${node.name.text} extends ${base}`);
            }
          }
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
  }
  assert.deepEqual(offenders, [], 'error classes that bypass the branded bases');
});
