/**
 * The project's import graph, read from the source files, and the rules of the house (docs/design.md):
 * layers whose imports never point up, siblings that never import each other, only app/ sees cluster/,
 * and no cycles. Run directly (`node dist/test/import-graph.js`) to print what breaks the rules.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** Folders from the bottom up; an import may point to its own folder or one lower in this list. */
export const LAYERS: string[][] = [
  ['core'], ['config'], ['inference'], ['services'], ['pipeline'], ['stages', 'transports', 'console', 'cluster'], ['app'], ['bin'],
];
/** Folders that may import only these (besides themselves). */
const ONLY: Record<string, string[]> = { core: [], config: ['core'], inference: ['core'] };

export interface Edge { from: string; to: string; typeOnly: boolean }

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (/\.(c|m)?ts$/.test(name) && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

/** Every relative import of the project's own code (tests and benchmarks left out), as paths from the root. */
export function importGraph(root = ROOT): Edge[] {
  const folders = LAYERS.flat().filter((f) => { try { return statSync(path.join(root, f)).isDirectory(); } catch { return false; } });
  const edges: Edge[] = [];
  for (const file of folders.flatMap((f) => sourceFiles(path.join(root, f)))) {
    const text = readFileSync(file, 'utf8');
    const info = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, false);
    const specs: { spec: string; typeOnly: boolean }[] = [];
    const visit = (node: ts.Node): void => {
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        const clause = ts.isImportDeclaration(node) ? node.importClause : undefined;
        const typeOnly = ts.isImportDeclaration(node) ? Boolean(clause?.isTypeOnly) : node.isTypeOnly;
        specs.push({ spec: node.moduleSpecifier.text, typeOnly });
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword
        && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
        specs.push({ spec: node.arguments[0].text, typeOnly: false });
      } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
        specs.push({ spec: node.argument.literal.text, typeOnly: true });
      }
      ts.forEachChild(node, visit);
    };
    visit(info);
    for (const { spec, typeOnly } of specs) {
      if (!spec.startsWith('.')) {
        // Packages matter only where a rule names them (NATS stays inside cluster/ and app/).
        if (spec === 'nats' || spec.startsWith('nats/')) edges.push({ from: path.relative(root, file), to: 'npm:nats', typeOnly });
        continue;
      }
      const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts').replace(/\.cjs$/, '.cts').replace(/\.mjs$/, '.mts');
      edges.push({ from: path.relative(root, file), to: path.relative(root, target), typeOnly });
    }
  }
  return edges;
}

const folderOf = (file: string): string => file.split(path.sep)[0];
const rankOf = (folder: string): number => LAYERS.findIndex((l) => l.includes(folder));

/** Imports that break a rule of the house, each with the rule it breaks. */
export function violations(edges: Edge[]): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const a = folderOf(e.from);
    if (e.to === 'npm:nats') {
      if (a !== 'cluster' && a !== 'app') out.push(`${e.from} → nats: only cluster/ and app/ speak NATS`);
      continue;
    }
    const b = folderOf(e.to);
    if (a === b) continue;
    const why = rankOf(b) < 0 ? `${b}/ is not a folder of the house`
      : ONLY[a] && !ONLY[a].includes(b) ? `${a}/ may import only ${ONLY[a].map((f) => `${f}/`).join(', ') || 'nothing of ours'}`
        : rankOf(b) > rankOf(a) ? `${a}/ may not import ${b}/, which is above it`
          : rankOf(b) === rankOf(a) ? `${a}/ and ${b}/ never import each other`
            : b === 'cluster' && a !== 'app' ? 'only app/ imports cluster/'
              : null;
    if (why) out.push(`${e.from} → ${e.to}: ${why}`);
  }
  return out;
}

/** Import cycles (type-only imports included), each as the list of files around it. */
export function cycles(edges: Edge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  // Tarjan's strongly connected components: every component of more than one file holds a cycle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1 || (next.get(v) ?? []).includes(v)) found.push(comp.sort());
    }
  };
  for (const v of next.keys()) if (!idx.has(v)) strong(v);
  return found;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const edges = importGraph();
  const bad = violations(edges);
  const loops = cycles(edges);
  for (const v of bad) console.log(v);
  for (const c of loops) console.log(`cycle of ${c.length} files: ${c.join(', ')}`);
  console.log(`${edges.length} imports, ${bad.length} against the rules, ${loops.length} cycles`);
}
