/**
 * Safe intake of images that clients send (DDFR frames and photos, WatchMe photos and frames, reconstruction
 * images): the format is recognised by its magic bytes and must be one the protocols name (JPEG, PNG) or one
 * OpenCV's imdecode also reads and libvips decodes safely (WebP, GIF's first frame, TIFF); SVG, PDF, HEIF and
 * anything else is refused before a decoder sees it. The dimensions are read from the header and refused over the
 * pixel cap before any pixel is decoded (a 43-byte GIF may declare 20000×20000). Decoding and resizing run in C
 * (sharp / libvips), in the worker thread that asked.
 */
import sharp, { type Metadata } from 'sharp';
import { coded } from '../../core/errors.js';
import { sniffFormat, type ImageFormat } from './sniff.js';

export { sniffFormat, type ImageFormat };

// One libvips thread per call: the pool's workers already run side by side, and ONNX Runtime has its own threads.
sharp.concurrency(1);
// Nothing to gain from libvips' operation cache for one-off client images; it only holds memory.
sharp.cache(false);

export interface DecodeOptions {
  /** Images whose header declares more pixels than this are refused without being decoded. */
  maxPixels: number;
  /** Scale down (never up) so that the longer side is at most this. */
  maxSide?: number;
}

export interface DecodedImage {
  width: number;
  height: number;
  /** Packed RGB, width × height × 3, in memory of its own (it can be transferred). */
  rgb: Uint8Array;
  format: ImageFormat;
}

/** Decodes a client's image to packed RGB: BAD_IMAGE for what is not an accepted image, IMAGE_TOO_LARGE over the cap. */
export async function decodeImage(bytes: Uint8Array, opts: DecodeOptions | number): Promise<DecodedImage> {
  const o: DecodeOptions = typeof opts === 'number' ? { maxPixels: opts } : opts;
  const format = sniffFormat(bytes);
  if (!format) throw coded('BAD_IMAGE', 'not a decodable image: the format is not JPEG, PNG, WebP, GIF or TIFF');
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The header only: sharp reads the dimensions without decoding pixels.
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false, pages: 1, failOn: 'none' }).metadata();
  } catch (err) {
    throw coded('BAD_IMAGE', `not a decodable image: ${firstLine(err)}`);
  }
  if (meta.format !== format && !(format === 'tiff' && meta.format === 'tiff')) {
    throw coded('BAD_IMAGE', `not a decodable image: its bytes say ${format}, its header ${String(meta.format)}`);
  }
  // EXIF orientations 5-8 swap the sides once rotated.
  const swap = (meta.orientation ?? 1) >= 5;
  const width = (swap ? meta.height : meta.width) ?? 0;
  const height = (swap ? meta.width : meta.height) ?? 0;
  if (!(width > 0 && height > 0)) throw coded('BAD_IMAGE', 'not a decodable image: no pixels');
  if (width * height > o.maxPixels) throw coded('IMAGE_TOO_LARGE', `image is ${width}x${height}, more than ${o.maxPixels} pixels`);
  try {
    let p = sharp(input, { limitInputPixels: o.maxPixels, pages: 1, failOn: 'truncated', sequentialRead: true }).rotate();
    if (o.maxSide && Math.max(width, height) > o.maxSide) {
      p = p.resize({ width: o.maxSide, height: o.maxSide, fit: 'inside', withoutEnlargement: true, kernel: 'lanczos3' });
    }
    const { data, info } = await p.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion`);
    // A copy into memory of its own: sharp's buffer may be a view of a larger pool.
    const rgb = new Uint8Array(data.byteLength);
    rgb.set(data);
    return { width: info.width, height: info.height, rgb, format };
  } catch (err) {
    throw coded('BAD_IMAGE', `not a decodable image: ${firstLine(err)}`);
  }
}

/** A JPEG of packed RGB pixels (stored reconstruction images: the scaled copy, not the client's original). */
export async function encodeJpeg(rgb: Uint8Array, width: number, height: number, quality = 90): Promise<Buffer> {
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } }).jpeg({ quality }).toBuffer();
}

/** Packed RGB from canvas RGBA pixels (alpha dropped). */
export function rgbaToRgb(rgba: Uint8ClampedArray | Uint8Array): Uint8Array {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

const firstLine = (err: unknown): string => String((err as Error)?.message ?? err).split('\n')[0].slice(0, 200);
