/**
 * Worker side of person description: (decode and detect persons, for images,) then the ReID embedding of every
 * person box and the face embedding of the face inside it, in one task so the pixels cross threads once.
 */
import { defineOp } from '../protocol.js';
import type { Box } from '../../core/types.js';
import { decodeImage } from '../image/decode.js';
import { detect } from './detect.js';
import type { EmbeddedFace } from './embed-faces.protocol.js';
import { embedFaces } from './embed-faces.js';
import type { DescribedPerson, PersonEmbedResult, PersonEmbedTask } from './person-embed.protocol.js';
import { reidEmbed } from './reid.js';

const PERSON_CLASS = 0;
/** A tight crop of one standing person is taller than wide; a landscape image with nobody in it is no person. */
const CROP_MIN_ASPECT = 1.2;
const CROP_MAX_ASPECT = 5;

export async function personEmbed(task: PersonEmbedTask, threads: number): Promise<PersonEmbedResult> {
  const t0 = performance.now();
  let width: number;
  let height: number;
  let data: ArrayBuffer;
  let boxes: { box: Box; score: number }[];
  if ('image' in task) {
    const img = await decodeImage(new Uint8Array(task.image), task.maxPixels);
    ({ width, height } = img);
    data = img.rgb.buffer as ArrayBuffer;
    const r = await detect({
      op: 'detect', model: task.detector, width, height, data, scoreThreshold: task.personScore, nmsIou: 0.45, classIds: [PERSON_CLASS],
    }, threads);
    const area = (b: Box): number => (b[2] - b[0]) * (b[3] - b[1]);
    boxes = r.detections.map((d) => ({ box: d.box, score: d.score })).sort((a, b) => area(b.box) * b.score - area(a.box) * a.score);
    const aspect = height / width;
    if (!boxes.length && task.wholeImageIsPerson && aspect >= CROP_MIN_ASPECT && aspect <= CROP_MAX_ASPECT) {
      boxes = [{ box: [0, 0, width, height], score: 1 }];
    }
  } else {
    ({ width, height, data } = task);
    boxes = task.boxes.map((box) => ({ box, score: 1 }));
  }
  if (!boxes.length) return { width, height, persons: [], inferenceMs: performance.now() - t0 };

  const reid = await reidEmbed({ op: 'reid', model: task.reid, width, height, data, boxes: boxes.map((b) => b.box) }, threads);
  const persons: DescribedPerson[] = boxes.map((b, i) => ({ box: b.box, score: b.score, body: reid.embeddings[i] }));
  if (task.face) {
    const given = 'faces' in task ? task.faces : undefined;
    const r = await embedFaces({
      op: 'embed-faces', detector: task.face.detector, embedder: task.face.embedder, width, height, data: reid.data,
      scoreThreshold: task.face.scoreThreshold, maxSide: 'image' in task ? 1280 : 768, faces: given,
    }, threads);
    assignFaces(persons, r.faces);
  }
  return { width, height, persons, inferenceMs: performance.now() - t0 };
}

/** Each face goes to the smallest person box that holds its centre in its upper half (the head); one face per person. */
function assignFaces(persons: DescribedPerson[], faces: EmbeddedFace[]): void {
  for (const f of faces) {
    const cx = (f.box[0] + f.box[2]) / 2;
    const cy = (f.box[1] + f.box[3]) / 2;
    let owner: DescribedPerson | undefined;
    for (const p of persons) {
      const [x1, y1, x2, y2] = p.box;
      if (p.face || cx < x1 || cx > x2 || cy < y1 || cy > y1 + (y2 - y1) / 2) continue;
      if (!owner || (x2 - x1) * (y2 - y1) < (owner.box[2] - owner.box[0]) * (owner.box[3] - owner.box[1])) owner = p;
    }
    if (owner) owner.face = f.embedding;
  }
}

export const ops = [
  defineOp<PersonEmbedTask, PersonEmbedResult>({
    op: 'person-embed', run: (t, env) => personEmbed(t, env.threads),
    transfer: (r) => r.persons.flatMap((p) => [p.body.buffer as ArrayBuffer, ...(p.face ? [p.face.buffer as ArrayBuffer] : [])]),
  }),
];
