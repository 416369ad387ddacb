/**
 * Worker side of frame annotation: draw boxes, lines and text over a frame and encode it as JPEG with
 * @napi-rs/canvas (Skia), so the main thread only ever handles the small JPEG.
 */
import { defineOp } from '../protocol.js';
import { createCanvas, GlobalFonts, type Canvas, type ImageData, type SKRSContext2D } from '@napi-rs/canvas';
import type { AnnotateBox, AnnotateLine, AnnotateResult, AnnotateTask, AnnotateText } from './annotate.protocol.js';

/** Colours that carry white text; a label hashes to one, so a track keeps its colour across frames. */
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#e6550d', '#8c564b', '#c2185b', '#00838f', '#5d4037', '#3949ab'];
const LINE_COLOR = '#ffd400';
const TEXT_COLOR = '#ffffff';
const TEXT_BACKGROUND = 'rgba(0, 0, 0, 0.6)';
/** Skia picks the first family it has; DejaVu (fonts-dejavu-core) is the one setup installs on Debian. */
const FONT_FAMILY = '"DejaVu Sans", "Noto Sans", "Liberation Sans", sans-serif';
/** Frame sizes whose canvases a worker keeps; a worker serves few distinct stream sizes. */
const MAX_SURFACES = 4;

interface Surface {
  canvas: Canvas;
  ctx: SKRSContext2D;
  /** RGBA staging buffer for putImageData, alpha pre-set to 255; created only for source-size surfaces. */
  image?: ImageData;
}

/** LRU by insertion order: a hit is moved to the end, the oldest entry is evicted. */
const surfaces = new Map<string, Surface>();
let fontsChecked = false;

export async function annotate(task: AnnotateTask): Promise<AnnotateResult> {
  const t0 = performance.now();
  const { width, height } = task;
  const rgb = new Uint8Array(task.data);
  checkTask(task, rgb.length);
  warnIfNoFonts();

  const src = surface(width, height);
  const image = (src.image ??= opaqueImageData(src.ctx, width, height));
  copyRgbToRgba(rgb, width, 0, 0, width, height, image.data);
  src.ctx.putImageData(image, 0, 0);

  const out = scaled(src, width, height, task.outWidth);
  const sx = out.canvas.width / width;
  const sy = out.canvas.height / height;
  const style = drawStyle(out.canvas.width, out.canvas.height);
  for (const b of task.boxes) drawBox(out.ctx, b, sx, sy, style);
  for (const l of task.lines) drawLine(out.ctx, l, sx, sy, style);
  for (const t of task.texts) drawText(out.ctx, t, sx, sy, style);

  // Surfaces are shared per size, yet overlapping calls cannot mix frames: everything from putImageData up to
  // encode() (which snapshots the canvas when called) runs synchronously.
  const jpeg = await encodeJpeg(out.canvas, task.quality);
  return { jpeg, data: task.data, width: out.canvas.width, height: out.canvas.height, encodeMs: performance.now() - t0 };
}

function checkTask(task: AnnotateTask, bytes: number): void {
  const { width, height, quality, outWidth } = task;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`annotate: frame size must be positive integers, got ${width}x${height}`);
  }
  if (bytes !== width * height * 3) {
    throw new RangeError(`annotate: frame is ${bytes} bytes, expected ${width}x${height}x3 = ${width * height * 3} RGB bytes`);
  }
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`annotate: quality must be an integer 1-100, got ${quality}`);
  }
  if (outWidth !== undefined && (!Number.isInteger(outWidth) || outWidth <= 0)) {
    throw new RangeError(`annotate: outWidth must be a positive integer, got ${outWidth}`);
  }
}

/** Text silently draws nothing when Skia finds no font, so say it once per worker. */
function warnIfNoFonts(): void {
  if (fontsChecked) return;
  fontsChecked = true;
  if (GlobalFonts.families.length === 0) {
    process.emitWarning('annotate: no fonts found under /usr/share/fonts, labels and text will be invisible (install fonts-dejavu-core)');
  }
}

function surface(width: number, height: number): Surface {
  const key = `${width}x${height}`;
  let s = surfaces.get(key);
  if (s) {
    surfaces.delete(key);
  } else {
    const canvas = createCanvas(width, height);
    s = { canvas, ctx: canvas.getContext('2d', { alpha: false }) };
    if (surfaces.size >= MAX_SURFACES) surfaces.delete(surfaces.keys().next().value as string);
  }
  surfaces.set(key, s);
  return s;
}

function opaqueImageData(ctx: SKRSContext2D, width: number, height: number): ImageData {
  const image = ctx.createImageData(width, height);
  image.data.fill(255); // RGB is overwritten per frame; only alpha has to stay 255
  return image;
}

/** The surface to draw overlays on: the source itself, or a scaled copy when outWidth differs. */
function scaled(src: Surface, width: number, height: number, outWidth: number | undefined): Surface {
  if (outWidth === undefined || outWidth === width) return src;
  const outHeight = Math.max(1, Math.round((height * outWidth) / width));
  const out = surface(outWidth, outHeight);
  // 'low' is bilinear: cheap, and fine for the mild downscales a preview uses.
  out.ctx.imageSmoothingEnabled = true;
  out.ctx.imageSmoothingQuality = 'low';
  out.ctx.drawImage(src.canvas, 0, 0, outWidth, outHeight);
  return out;
}

/**
 * Copy a w×h region at (x, y) of a packed RGB frame `stride` pixels wide into RGBA `dst`, leaving alpha as it
 * is (callers pre-fill it with 255 once). One tight loop; the per-frame cost is ~1 ms for 768×576.
 */
export function copyRgbToRgba(
  rgb: Uint8Array,
  stride: number,
  x: number,
  y: number,
  w: number,
  h: number,
  dst: Uint8ClampedArray,
): void {
  for (let row = 0, j = 0; row < h; row++) {
    const end = ((y + row) * stride + x + w) * 3;
    for (let i = ((y + row) * stride + x) * 3; i < end; i += 3, j += 4) {
      dst[j] = rgb[i];
      dst[j + 1] = rgb[i + 1];
      dst[j + 2] = rgb[i + 2];
    }
  }
}

/**
 * Encode on the libuv pool and copy into a fresh ArrayBuffer: the native Buffer's memory may not be
 * transferable to another thread, a copy of a few tens of kB always is.
 */
export async function encodeJpeg(canvas: Canvas, quality: number): Promise<ArrayBuffer> {
  const buf = await canvas.encode('jpeg', quality);
  const copy = new ArrayBuffer(buf.byteLength);
  new Uint8Array(copy).set(buf);
  return copy;
}

interface DrawStyle {
  lineWidth: number;
  fontSize: number;
}

/** Sizes in output pixels, so a scaled-down preview keeps readable labels and visible lines. */
function drawStyle(outWidth: number, outHeight: number): DrawStyle {
  return {
    lineWidth: Math.max(2, Math.round(Math.min(outWidth, outHeight) / 300)),
    fontSize: Math.min(24, Math.max(12, Math.round(outHeight / 40))),
  };
}

function drawBox(ctx: SKRSContext2D, { box, label, color }: AnnotateBox, sx: number, sy: number, style: DrawStyle): void {
  const colour = color ?? paletteColor(label);
  // Whole output pixels keep the edges crisp (no half-covered anti-aliased rows), which also JPEGs better.
  const x1 = Math.round(box[0] * sx);
  const y1 = Math.round(box[1] * sy);
  const w = Math.round(box[2] * sx) - x1;
  const h = Math.round(box[3] * sy) - y1;
  // Stroke just inside the box so the frame's own pixels outside it stay visible and the tab sits flush on top.
  const lw = Math.min(style.lineWidth, w / 2, h / 2);
  if (lw > 0) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = lw;
    ctx.strokeRect(x1 + lw / 2, y1 + lw / 2, w - lw, h - lw);
  }
  if (label) drawTab(ctx, label, x1, y1, colour, style);
}

/** Label tab on the box's top-left corner: above the box, or just inside it when the box touches the top. */
function drawTab(ctx: SKRSContext2D, label: string, x: number, y: number, colour: string, style: DrawStyle): void {
  const pad = Math.round(style.fontSize / 4);
  ctx.font = `bold ${style.fontSize}px ${FONT_FAMILY}`;
  const w = Math.ceil(ctx.measureText(label).width) + 2 * pad;
  const h = style.fontSize + 2 * pad;
  const tx = Math.max(0, Math.min(x, ctx.canvas.width - w));
  const ty = y - h >= 0 ? y - h : y;
  ctx.fillStyle = colour;
  ctx.fillRect(tx, ty, w, h);
  ctx.fillStyle = isLight(colour) ? '#000000' : '#ffffff';
  ctx.textBaseline = 'top';
  ctx.fillText(label, tx + pad, ty + pad);
}

function drawLine(ctx: SKRSContext2D, { from, to, color }: AnnotateLine, sx: number, sy: number, style: DrawStyle): void {
  ctx.strokeStyle = color ?? LINE_COLOR;
  ctx.lineWidth = style.lineWidth;
  ctx.lineCap = 'round';
  ctx.beginPath();
  ctx.moveTo(from[0] * sx, from[1] * sy);
  ctx.lineTo(to[0] * sx, to[1] * sy);
  ctx.stroke();
}

/** Text on a dark translucent panel so it reads on any background; '\n' separates lines. */
function drawText(ctx: SKRSContext2D, { text, x, y, color, size }: AnnotateText, sx: number, sy: number, style: DrawStyle): void {
  const fontSize = size ?? style.fontSize;
  const pad = Math.round(fontSize / 4);
  const lineHeight = Math.round(fontSize * 1.25);
  const rows = text.split('\n');
  ctx.font = `${fontSize}px ${FONT_FAMILY}`;
  const w = Math.ceil(Math.max(...rows.map((r) => ctx.measureText(r).width))) + 2 * pad;
  const h = rows.length * lineHeight + 2 * pad;
  const left = x * sx;
  const top = y * sy;
  ctx.fillStyle = TEXT_BACKGROUND;
  ctx.fillRect(left, top, w, h);
  ctx.fillStyle = color ?? TEXT_COLOR;
  ctx.textBaseline = 'top';
  rows.forEach((row, i) => ctx.fillText(row, left + pad, top + pad + i * lineHeight + (lineHeight - fontSize) / 2));
}

/** FNV-1a of the label picks a stable palette colour. */
function paletteColor(label: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return PALETTE[(h >>> 0) % PALETTE.length];
}

/** True for a light #rgb/#rrggbb colour (black text reads better on it); other CSS colours count as dark. */
function isLight(colour: string): boolean {
  const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(colour);
  if (!m) return false;
  const hex = m[1].length === 3 ? [...m[1]].map((c) => c + c).join('') : m[1];
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150;
}

export const ops = [
  defineOp<AnnotateTask, AnnotateResult>({ op: 'annotate', run: (t) => annotate(t), transfer: (r) => [r.jpeg, r.data] }),
];
