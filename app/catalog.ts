/**
 * The catalog: every stage, transport, worker op and model kind this build has, in one place at the top, handed
 * down to config (to validate graphs), the engine (to build pipelines), the inference pool (to load ops in its
 * workers) and the app (to mount transports) — as GStreamer consults its registry instead of linking its plugins.
 * Adding a stage, a protocol or an op means adding it here.
 */
import { loadGraph as loadWith, parseGraph as parseWith, type Graph, type GraphCatalog, type GraphWarnings } from '../config/graph.js';
import { DEPTH_MODEL_KINDS } from '../inference/models/depth.js';
import type { StageDefinition } from '../pipeline/stage.js';
import { activityStage } from '../stages/activity.js';
import { annotateStage } from '../stages/annotate.js';
import { countStage } from '../stages/count.js';
import { depthStage } from '../stages/depth.js';
import { detectStage } from '../stages/detect.js';
import { facesStage } from '../stages/faces.js';
import { poseStage } from '../stages/pose.js';
import { reconstructStage } from '../stages/reconstruct.js';
import { trackStage } from '../stages/track.js';
import type { TransportDefinition } from '../transports/contract.js';
import { ddfrTransport } from '../transports/ddfr/index.js';
import { metricsTransport } from '../transports/metrics/index.js';
import { peopleCounterTransport } from '../transports/people-counter/index.js';
import { poseStreamTransport } from '../transports/pose-stream/index.js';
import { reconstructionTransport } from '../transports/reconstruction/index.js';
import { watchmeTransport } from '../transports/watchme/index.js';
import { consoleTransport } from './console.js';

export const STAGES = [
  detectStage, trackStage, countStage, facesStage, annotateStage, poseStage, activityStage, depthStage, reconstructStage,
] as unknown as StageDefinition[];

export const TRANSPORTS: TransportDefinition[] = [
  metricsTransport, peopleCounterTransport, ddfrTransport, poseStreamTransport, reconstructionTransport, watchmeTransport, consoleTransport,
];

/** Model kinds a graph's `models` section may declare. */
export const MODEL_KINDS = ['yolox', 'yunet', 'mobilefacenet', 'simplepose', 'reid', ...DEPTH_MODEL_KINDS] as const;

/** The op modules every inference worker loads (each exports `ops`). */
export const WORKER_OPS: string[] = [
  'load', 'detect', 'faces', 'crop', 'annotate', 'embed-faces', 'recognize-image', 'reid', 'pose', 'depth', 'reconstruct', 'person-embed',
].map((name) => new URL(`../inference/ops/${name}.js`, import.meta.url).href);

export const catalog: GraphCatalog = { stages: STAGES, transports: TRANSPORTS, modelKinds: MODEL_KINDS };

export const stageDefinition = (name: string): StageDefinition | undefined => STAGES.find((d) => d.name === name);
export const transportDefinition = (name: string): TransportDefinition | undefined => TRANSPORTS.find((d) => d.name === name);

/** A graph file, validated against this build's catalog. */
export const loadGraph = (file: string): Graph & GraphWarnings => loadWith(file, catalog);
/** Graph text, validated against this build's catalog. */
export const parseGraph = (text: string, file = '<graph>'): Graph & GraphWarnings => parseWith(text, file, catalog);
