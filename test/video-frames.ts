/** Frames of a real video decoded the way a source delivers them, crops of them encoded as images, and clips for a fake camera. */
import { createCanvas } from '@napi-rs/canvas';
import { gstreamer } from '../pipeline/sources/gstreamer.js';
import type { Box } from '../core/types.js';

export interface RgbImage { rgb: Uint8Array; width: number; height: number }

/** Decoded RGB frames `first..last` of a video, pulled with GStreamer the way a source delivers them. */
export function videoFrames(file: string, first: number, last: number): Promise<Map<number, RgbImage>> {
  const p = new gstreamer.Pipeline(
    `filesrc location="${file}" ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=4 drop=false`,
  );
  const sink = p.findChild('sink')!;
  const frames = new Map<number, RgbImage>();
  let n = 0;
  p.play();
  return new Promise((resolve, reject) => {
    const pull = (): void => sink.pull((buf, caps) => {
      if (!buf) { p.stop(); reject(new Error(`${file} ended after ${n} frames`)); return; }
      if (n >= first) frames.set(n, { rgb: new Uint8Array(buf), width: Number(caps.width), height: Number(caps.height) });
      if (n++ >= last) { p.stop(); resolve(frames); } else pull();
    });
    pull();
  });
}

/** `keep` of every frame of a video at width×height RGB, scaled by GStreamer as a source scales it. */
export function decodedFrames<T>(file: string, width: number, height: number, keep: (rgb: Buffer) => T): Promise<T[]> {
  const p = new gstreamer.Pipeline(`filesrc location="${file}" ! decodebin ! videoscale ! video/x-raw,width=${width},height=${height},pixel-aspect-ratio=1/1 ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=4 drop=false`);
  const sink = p.findChild('sink')!;
  const frames: T[] = [];
  p.play();
  return new Promise((resolve) => {
    const pull = (): void => sink.pull((buf) => {
      if (!buf) { p.stop(); resolve(frames); return; }
      frames.push(keep(buf));
      pull();
    });
    pull();
  });
}

/** Encodes `box` of an RGB frame (or all of it) as PNG or JPEG. */
export async function encode(img: RgbImage, box: Box = [0, 0, img.width, img.height], as: 'png' | 'jpeg' = 'png'): Promise<Buffer> {
  const [x1, y1, x2, y2] = box.map(Math.round);
  const c = createCanvas(img.width, img.height);
  const ctx = c.getContext('2d');
  const data = ctx.createImageData(img.width, img.height);
  for (let i = 0, j = 0; i < img.rgb.length; i += 3, j += 4) {
    data.data[j] = img.rgb[i]; data.data[j + 1] = img.rgb[i + 1]; data.data[j + 2] = img.rgb[i + 2]; data.data[j + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
  const crop = createCanvas(x2 - x1, y2 - y1);
  crop.getContext('2d').drawImage(c, x1, y1, x2 - x1, y2 - y1, 0, 0, x2 - x1, y2 - y1);
  return as === 'png' ? crop.encode('png') : crop.encode('jpeg', 85);
}

/** A Y4M clip of RGB frames (BT.601 full range, 4:2:0), the format Chromium's fake camera plays. */
export function y4m(images: RgbImage[], fps: number): Buffer {
  const { width, height } = images[0];
  const parts = [Buffer.from(`YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`)];
  for (const { rgb } of images) {
    const y = Buffer.alloc(width * height);
    const u = Buffer.alloc((width / 2) * (height / 2));
    const v = Buffer.alloc((width / 2) * (height / 2));
    for (let i = 0; i < width * height; i++) {
      const [r, g, b] = [rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]];
      y[i] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
      const px = i % width;
      const py = Math.floor(i / width);
      if (px % 2 === 0 && py % 2 === 0) {
        const j = (py / 2) * (width / 2) + px / 2;
        u[j] = Math.max(0, Math.min(255, Math.round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b)));
        v[j] = Math.max(0, Math.min(255, Math.round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b)));
      }
    }
    parts.push(Buffer.from('FRAME\n'), y, u, v);
  }
  return Buffer.concat(parts);
}
