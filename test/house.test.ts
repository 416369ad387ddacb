/**
 * The house (docs/design.md, "The house"): imports never point up the layers, stages, transports, the console and
 * the cluster never import each other, only app/ sees cluster/ (and only they speak NATS), and there are no import
 * cycles. Read from the source files, so the layout cannot drift back.
 */
import test from 'ava';
import { cycles, importGraph, LAYERS, violations } from './import-graph.js';

const edges = importGraph();

test('the import graph was read (every layer has files)', (t) => {
  const folders = new Set(edges.map((e) => e.from.split('/')[0]));
  for (const f of ['core', 'config', 'inference', 'services', 'pipeline', 'stages', 'transports', 'cluster', 'app', 'bin']) t.true(folders.has(f), f);
  t.true(edges.length > 300, `${edges.length} imports`);
  t.is(LAYERS.flat().length, 11);
});

test('no import breaks the rules of the house', (t) => {
  t.deepEqual(violations(edges), []);
});

test('no import cycles, type-only imports included', (t) => {
  t.deepEqual(cycles(edges), []);
});

test('the checker sees a violation and a cycle when there is one', (t) => {
  const bad = [
    { from: 'core/a.ts', to: 'pipeline/b.ts', typeOnly: true },
    { from: 'stages/x.ts', to: 'transports/y/index.ts', typeOnly: false },
    { from: 'pipeline/b.ts', to: 'pipeline/c.ts', typeOnly: false },
    { from: 'pipeline/c.ts', to: 'pipeline/b.ts', typeOnly: true },
    { from: 'transports/z.ts', to: 'npm:nats', typeOnly: false },
  ];
  t.is(violations(bad).length, 3);
  t.deepEqual(cycles(bad), [['pipeline/b.ts', 'pipeline/c.ts']]);
});
