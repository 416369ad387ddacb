/** Decodes an encoded image (JPEG, PNG, WebP, …) into packed RGB, in the worker, refusing absurd sizes. */
import { coded } from '../../core/errors.js';
import { createCanvas, loadImage } from '@napi-rs/canvas';


export async function decodeImage(bytes: Uint8Array, maxPixels: number): Promise<{ width: number; height: number; rgb: Uint8Array }> {
  let img: Awaited<ReturnType<typeof loadImage>>;
  try {
    img = await loadImage(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw coded('BAD_IMAGE', `not a decodable image: ${(err as Error).message}`);
  }
  const { width, height } = img;
  if (!(width > 0 && height > 0)) throw coded('BAD_IMAGE', 'not a decodable image: no pixels');
  if (width * height > maxPixels) throw coded('IMAGE_TOO_LARGE', `image is ${width}x${height}, more than ${maxPixels} pixels`);
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d', { alpha: false });
  ctx.drawImage(img, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  return { width, height, rgb: rgbaToRgb(rgba) };
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
