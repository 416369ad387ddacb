import test from 'ava';
import { parseGraph } from '../app/catalog.js';
import { GraphError } from '../config/graph.js';

const VALID = `sources:
  cam:
    uri: file://media/vtest.avi
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  main:
    source: cam
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.3 } }
`;

function issuesOf(yaml: string): string[] {
  try {
    parseGraph(yaml, 'g.yaml');
  } catch (err) {
    if (err instanceof GraphError) return err.message.split('\n');
    throw err;
  }
  throw new Error('graph was accepted');
}

test('a valid graph loads with defaults filled in', (t) => {
  const g = parseGraph(VALID, 'g.yaml');
  t.is(g.sources.cam.realtime, false);
  t.is(g.sources.cam.transport, 'tcp');
  // Stage options get their schema's defaults, so a stage is created with complete options.
  t.deepEqual(g.pipelines.main.stages[0], { id: 'detect', use: 'detect', from: null, with: { model: 'people', classes: ['person'], score: 0.3, nmsIou: 0.45, every: 1 } });
  t.deepEqual(g.pipelines.main.models, ['people']);
  t.deepEqual(g.warnings, []);
});

test('`from` defaults to the previous stage', (t) => {
  const g = parseGraph(VALID.replace(/stages:\n.*\n$/s, `stages:
      - { id: a, use: detect, with: { model: people } }
      - { id: b, use: detect, with: { model: people } }
      - { id: c, use: detect, from: a, with: { model: people } }
`), 'g.yaml');
  t.deepEqual(g.pipelines.main.stages.map((s) => [s.id, s.from]), [['a', null], ['b', 'a'], ['c', 'a']]);
});

test('unknown stage names file, line, key and the known stages', (t) => {
  const [msg] = issuesOf(VALID.replace('use: detect', 'use: detekt'));
  t.regex(msg, /^g\.yaml:10:23: pipelines\.main\.stages\[0\]\.use: unknown stage "detekt"; expected one of detect, (\w+(, )?)+$/);
});

test('a wrong type in stage options is reported at its line', (t) => {
  const [msg] = issuesOf(VALID.replace('score: 0.3', 'score: high'));
  t.regex(msg, /^g\.yaml:10:\d+: pipelines\.main\.stages\[0\]\.with\.score: must be number$/);
});

test('wrong types and unknown keys in sources are reported', (t) => {
  const msgs = issuesOf(VALID.replace('uri: file://media/vtest.avi', 'uri: file://media/vtest.avi\n    width: wide\n    colour: red'));
  t.true(msgs.some((m) => /^g\.yaml:4:5: sources\.cam\.width: must be integer$/.test(m)), msgs.join('\n'));
  t.true(msgs.some((m) => /^g\.yaml:5:\d+: sources\.cam\.colour: unknown key "colour"; expected one of uri, width, height/.test(m)), msgs.join('\n'));
});

test('a cycle among stages is an error', (t) => {
  const msgs = issuesOf(VALID.replace(/stages:\n.*\n$/s, `stages:
      - { id: a, use: detect, from: b, with: { model: people } }
      - { id: b, use: detect, from: a, with: { model: people } }
`));
  t.true(msgs.some((m) => /stages form a cycle: a -> b -> a/.test(m)), msgs.join('\n'));
});

test('a `from` naming no stage is an error', (t) => {
  const [msg] = issuesOf(VALID.replace('use: detect,', 'use: detect, from: nowhere,'));
  t.regex(msg, /^g\.yaml:10:\d+: pipelines\.main\.stages\[0\]\.from: "from" names "nowhere", which is not a stage of this pipeline/);
});

test('unknown source, model, class and transport pipeline are errors', (t) => {
  const msgs = issuesOf(VALID.replace('source: cam', 'source: lobby').replace('model: people', 'model: faces')
    .replace('classes: [person]', 'classes: [persn]') + 'transports:\n  people-counter: { port: 8765, pipeline: other }\n');
  t.true(msgs.some((m) => m.includes('pipelines.main.source: unknown source "lobby"; defined sources: cam')));
  t.true(msgs.some((m) => m.includes('pipelines.main.stages[0].with.model: unknown model "faces"')));
  t.true(msgs.some((m) => m.includes('pipelines.main.stages[0].with.classes[0]: unknown class "persn"')));
  t.true(msgs.some((m) => m.includes('transports.people-counter.pipeline: unknown pipeline "other"')));
});

test('bad URIs, missing keys and YAML syntax errors are reported', (t) => {
  t.regex(issuesOf(VALID.replace('file://media/vtest.avi', 'http://x'))[0], /sources\.cam\.uri: must match/);
  t.regex(issuesOf(VALID.replace('    source: cam\n', ''))[0], /^g\.yaml:\d+:\d+: pipelines\.main: missing required key "source"$/);
  t.regex(issuesOf('sources: [\n')[0], /^g\.yaml:\d+:\d+: \(top level\): YAML syntax: /);
  t.regex(issuesOf(VALID + 'extra: 1\n')[0], /^g\.yaml:11:1: extra: unknown key "extra"; expected one of sources, models, pipelines, transports$/);
});

test('a stage whose input no upstream stage provides is an error', (t) => {
  const [msg] = issuesOf(VALID.replace(/stages:\n.*\n$/s, `stages:
      - { id: track, use: track }
      - { id: detect, use: detect, from: track, with: { model: people } }
`));
  t.regex(msg, /^g\.yaml:10:\d+: pipelines\.main\.stages\[0\]\.use: stage "track" needs detections, which no upstream stage provides; put a detect stage before it/);
  // A `from` that skips the stage providing the input is caught too.
  const msgs = issuesOf(VALID.replace(/stages:\n.*\n$/s, `stages:
      - { id: detect, use: detect, with: { model: people } }
      - { id: track, use: track }
      - { id: count, use: count, from: detect, with: { line: [[0.5, 0], [0.5, 1]] } }
`));
  t.true(msgs.some((m) => m.includes('stages[2].use: stage "count" needs tracks')), msgs.join('\n'));
});

test('a source may name the environment it watches; a name that is another source\'s id is an error', (t) => {
  const g = parseGraph(VALID.replace('    uri: file://media/vtest.avi\n', '    uri: file://media/vtest.avi\n    environment: room_001\n'), 'g.yaml');
  t.is(g.sources.cam.environment, 'room_001');
  const two = VALID.replace('sources:\n', 'sources:\n  door: { uri: "test://ball", environment: cam }\n');
  t.regex(issuesOf(two)[0], /^g\.yaml:2:\d+: sources\.door\.environment: environment "cam" is the id of another source; name the place differently$/);
  t.regex(issuesOf(VALID.replace('    uri: file://media/vtest.avi\n', '    uri: file://media/vtest.avi\n    environment: "room 1"\n'))[0],
    /sources\.cam\.environment: must match/);
});

test('a people-counter whose pipeline produces no JPEG loads with a warning at its line; with annotate, without one', (t) => {
  const counter = 'transports:\n  people-counter: { port: 8765, pipeline: main }\n';
  const g = parseGraph(VALID + counter, 'g.yaml');
  t.deepEqual(g.warnings, ['g.yaml:12:33: transports.people-counter.pipeline: pipeline "main" produces no JPEG (no stage provides jpeg): '
    + 'clients get stats and events but never a "frame" message; add an annotate stage']);
  const annotated = VALID.replace(/stages:\n(.*\n)$/s, 'stages:\n$1      - { id: annotate, use: annotate }\n');
  t.deepEqual(parseGraph(annotated + counter, 'g.yaml').warnings, []);
});
