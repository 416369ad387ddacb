/** Worker side of the faces stage: YuNet pre-processing, inference and decoding, plus JPEG crops of regions. */
import { defineOp } from '../protocol.js';
import { createCanvas } from '@napi-rs/canvas';
import * as ort from 'onnxruntime-node';
import { getSession } from '../sessions.js';
import type { Box } from '../../core/types.js';
import { copyRgbToRgba, encodeJpeg } from './annotate.js';
import type { FacesResult, FacesTask } from './faces.protocol.js';
import { decodeYunet, yunetInput } from '../models/yunet.js';

const DEFAULT_CROP_QUALITY = 85;
/** Crops include some context around the face box (hair, chin), which thumbnails and re-detection want. */
const CROP_ENLARGE = 1.2;

// One input buffer per worker, grown to the largest size seen. The pool runs one task per worker at a time;
// a call that overlaps another anyway (direct callers, tests) gets its own buffer instead of corrupting it.
let input = new Float32Array(0);
let inputBusy = false;

export async function detectFaces(task: FacesTask, threads: number): Promise<FacesResult> {
  const session = await getSession(task.model, threads);
  const rgb = new Uint8Array(task.data);
  if (rgb.length !== task.width * task.height * 3) {
    throw new Error(`faces: frame is ${rgb.length} bytes, expected ${task.width}x${task.height}x3 RGB`);
  }
  const { out, inferenceMs, geometry } = await infer(session, rgb, task);
  try {
    const outputs: Record<string, Float32Array> = {};
    for (const [name, value] of Object.entries(out)) outputs[name] = value.data as Float32Array;
    const faces = decodeYunet(outputs, { ...geometry, width: task.width, height: task.height, scoreThreshold: task.scoreThreshold });
    const crops = await encodeCrops(rgb, task.width, task.height, task.crops ?? [], task.cropQuality ?? DEFAULT_CROP_QUALITY);
    return { faces, data: task.data, inferenceMs, crops };
  } finally {
    for (const value of Object.values(out)) value.dispose();
  }
}

/** Pre-process into the worker's buffer (or a private one if it is in use) and run the model. */
async function infer(session: ort.InferenceSession, rgb: Uint8Array, task: FacesTask) {
  const shared = !inputBusy;
  inputBusy = true;
  try {
    const { tensor, ...geometry } = yunetInput(rgb, task.width, task.height, task.maxSide, shared ? inputBuffer(task.maxSide) : undefined);
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', tensor, [1, 3, geometry.inputH, geometry.inputW]) };
    const t0 = performance.now();
    const out = await session.run(feeds);
    return { out, inferenceMs: performance.now() - t0, geometry };
  } finally {
    if (shared) inputBusy = false;
  }
}

/** Large enough for any frame at this maxSide: neither padded side can exceed maxSide rounded up to 32. */
function inputBuffer(maxSide: number): Float32Array {
  const side = Math.ceil(maxSide / 32) * 32;
  if (input.length < 3 * side * side) input = new Float32Array(3 * side * side);
  return input;
}

export async function encodeCrops(
  rgb: Uint8Array,
  width: number,
  height: number,
  requests: { key: number; box: Box }[],
  quality: number,
): Promise<FacesResult['crops']> {
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`faces: cropQuality must be an integer 1-100, got ${quality}`);
  }
  const jobs = requests.map(async ({ key, box }) => {
    const region = cropRegion(box, width, height);
    return region && { key, jpeg: await encodeRegion(rgb, width, region, quality) };
  });
  return (await Promise.all(jobs)).filter((c): c is { key: number; jpeg: ArrayBuffer } => c !== null);
}

interface Region {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The box enlarged by CROP_ENLARGE around its centre, snapped outward to whole pixels and clipped; null if empty. */
export function cropRegion(box: Box, width: number, height: number): Region | null {
  const cx = (box[0] + box[2]) / 2;
  const cy = (box[1] + box[3]) / 2;
  const halfW = ((box[2] - box[0]) * CROP_ENLARGE) / 2;
  const halfH = ((box[3] - box[1]) * CROP_ENLARGE) / 2;
  const x1 = Math.max(0, Math.floor(cx - halfW));
  const y1 = Math.max(0, Math.floor(cy - halfH));
  const x2 = Math.min(width, Math.ceil(cx + halfW));
  const y2 = Math.min(height, Math.ceil(cy + halfH));
  // The negated form also rejects NaN coordinates.
  if (!(x2 > x1 && y2 > y1)) return null;
  return { x: x1, y: y1, w: x2 - x1, h: y2 - y1 };
}

async function encodeRegion(rgb: Uint8Array, stride: number, { x, y, w, h }: Region, quality: number): Promise<ArrayBuffer> {
  const canvas = createCanvas(w, h);
  const ctx = canvas.getContext('2d', { alpha: false });
  const image = ctx.createImageData(w, h);
  image.data.fill(255); // alpha; RGB is overwritten below
  copyRgbToRgba(rgb, stride, x, y, w, h, image.data);
  ctx.putImageData(image, 0, 0);
  return encodeJpeg(canvas, quality);
}

export const ops = [
  defineOp<FacesTask, FacesResult>({
    op: 'faces', run: (t, env) => detectFaces(t, env.threads), transfer: (r) => [r.data, ...r.crops.map((c) => c.jpeg)],
  }),
];
